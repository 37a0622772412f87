"""The in-cluster controller (`vm-rebalance controller`): RebalancePolicy → RebalancePlan → approval →
execution, on kopf, with leader election, Events, Prometheus metrics and probes.

A third front-end on the service (like `cli` and `mcp_server` it never imports the planner, the
executor, `kube` or `sources`). kopf and prometheus-client come with the `controller` extra and are
imported only when the controller runs. Modules: ``policy`` (a policy's spec → PlanSpec, automation,
schedule), ``schedule`` (intervals, cron, maintenance windows), ``status`` (what a plan's status
shows), ``reconcile`` (the decisions), ``executions`` (a plan carried out in a thread, journal and
progress in its status), ``leader`` (Lease-based leader election), ``metrics``, ``operator`` (the
process: kopf, probes, signals).
"""
