"""The seeds' health thresholds, headroom and batch limits: the one place they are defined.

Utilisation thresholds are fractions of allocatable (CPU warning 80 %, critical 90 %; memory
warning 85 %, critical 95 %). Batches: warn above 5 VMs, strongly recommend splitting above 10.
"""

CPU_WARNING = 0.80
CPU_CRITICAL = 0.90
MEMORY_WARNING = 0.85
MEMORY_CRITICAL = 0.95
DEFAULT_HEADROOM = 0.20
"""Keep this fraction of every node free after a plan (soft)."""
BATCH_WARN = 5
BATCH_SPLIT = 10
