"""``python -m vm_rebalance``."""

from vm_rebalance.cli.main import run

run()
