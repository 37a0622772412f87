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

# Pressure stall information (PSI, fractions of time over the observation window). A node whose
# tasks wait this often is saturated below the utilisation warning: it is judged hot from the
# pressured thresholds on (KubeVirtRelieveAndMigrate likewise counts PSI only above 70 % use).
CPU_PRESSURE = 0.10
"""CPU "some" pressure: a runnable task waited for a CPU 10 % of the time."""
MEMORY_PRESSURE = 0.05
"""Memory "some" pressure: a task stalled on memory (reclaim, swap-in) 5 % of the time."""
CPU_PRESSURED_WARNING = 0.70
"""Under CPU pressure a node is hot from 70 % CPU (the top of seed 003's 60-70 % target)."""
MEMORY_PRESSURED_WARNING = 0.80
"""Under memory pressure a node is hot from 80 % memory (the top of the 70-80 % target)."""
