"""The usage-source options shared by `plan`, `inventory`, `report` and `snapshot`.

``--usage auto|prometheus|stats|metrics-server|none``, ``--prometheus-url URL``, ``--window 1h``
and ``--percentile 95``: where usage comes from and what it summarises (service/usage.py checks
them; sources/detect.py documents the order of auto-detection).
"""

import dataclasses
from typing import Annotated

import typer

from vm_rebalance import service
from vm_rebalance.service.usage import DEFAULT_WINDOW, USAGE_CHOICES, UsageSpec

UsageOption = Annotated[
    str,
    typer.Option(
        "--usage",
        help=(
            "Where usage comes from: auto (Prometheus / OpenShift's Thanos querier, else the kubelet stats "
            "summary, else metrics.k8s.io), prometheus, stats, metrics-server or none (requests only)."
        ),
    ),
]
PrometheusOption = Annotated[
    str | None,
    typer.Option(
        "--prometheus-url",
        help="Prometheus (or Thanos querier) base URL, e.g. http://prometheus.monitoring:9090 "
        "(default: $VM_REBALANCE_PROMETHEUS_URL, else OpenShift's Thanos querier Route).",
        show_default=False,
    ),
]
WindowOption = Annotated[
    str,
    typer.Option("--window", help="With Prometheus: the window usage is averaged over (30m, 1h, 6h, 7d)."),
]
PercentileOption = Annotated[
    float | None,
    typer.Option(
        "--percentile",
        help="With Prometheus: this percentile over the window (e.g. 95) instead of the mean.",
        show_default=False,
    ),
]


def with_usage(
    target: service.Target,
    usage: str,
    prometheus_url: str | None,
    window: str,
    percentile: float | None,
    *,
    series: bool = False,
) -> service.Target:
    """The target with these usage options (checked: a bad value is a one-line error, exit 2)."""
    spec = UsageSpec(source=usage, prometheus_url=prometheus_url, window=window, percentile=percentile, series=series)
    spec.options()
    return dataclasses.replace(target, usage=spec)


__all__ = [
    "DEFAULT_WINDOW",
    "USAGE_CHOICES",
    "PercentileOption",
    "PrometheusOption",
    "UsageOption",
    "WindowOption",
    "with_usage",
]
