"""vm-rebalance: plan and execute the rebalancing of KubeVirt VMs across cluster nodes.

The library API: read a cluster (`service.read_state`), plan (`planner.propose_plan`),
render or execute the plan. Importing this package is cheap: heavy or optional
dependencies are imported where they are used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
