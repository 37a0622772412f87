"""Where usage comes from: the ``--usage`` / ``--prometheus-url`` / ``--window`` / ``--percentile`` choice.

Front-ends put a `UsageSpec` on their `Target` (``Target(usage=…)``); reading the cluster
(``read_state``, ``take_snapshot``, ``Session.open``) then builds the usage source from it
(sources/detect.py: Prometheus or OpenShift's Thanos querier over the window, else the kubelet
stats summary, else metrics.k8s.io, else requests). A target without a spec reads
metrics.k8s.io, as before.
"""

import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from vm_rebalance.errors import ConfigError
from vm_rebalance.kube.client import KubeClient, load_configuration
from vm_rebalance.model import ClusterState
from vm_rebalance.model.signals import duration_text
from vm_rebalance.sources.detect import UsageChoice, UsageOptions, build_usage, check_url
from vm_rebalance.sources.usage import NoUsage, UsageSource

if TYPE_CHECKING:
    from vm_rebalance.service.session import Progress, Target

USAGE_CHOICES = tuple(c.value for c in UsageChoice)
DEFAULT_WINDOW = "1h"
MIN_WINDOW_SECONDS = 60.0
MAX_WINDOW_SECONDS = 90 * 86400.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_window(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``1h30m``, ``7d``, ``2w`` → seconds (from 1 minute to 90 days).

    Raises:
        ConfigError: not a duration, or out of range.
    """
    value = text.strip().lower()
    parts = re.fullmatch(r"(?:\d+(?:\.\d+)?[smhdw])+", value)
    if not parts:
        raise ConfigError(f"--window must be a duration such as 30m, 1h, 6h or 7d, not {text!r}")
    seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhdw])", value))
    if not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
        raise ConfigError(f"--window must be from 1m to 90d, not {text!r}")
    return seconds


def check_percentile(value: float | None) -> float | None:
    """A percentile above 0 and at most 100 (None: the mean)."""
    if value is not None and (not math.isfinite(value) or not 0 < value <= 100):
        raise ConfigError(f"--percentile must be a number above 0 and at most 100 (e.g. 95), not {value:g}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageSpec:
    """How to measure usage, as a front-end received it (strings; `options` checks them)."""

    source: str = UsageChoice.AUTO.value
    """auto, prometheus, stats, metrics-server or none."""
    prometheus_url: str | None = None
    window: str = DEFAULT_WINDOW
    """The window a Prometheus source summarises (``1h``)."""
    percentile: float | None = None
    """None: the mean over the window; else this percentile (e.g. 95)."""
    series: bool = True

    def options(self) -> UsageOptions:
        """The checked options.

        Raises:
            ConfigError: an unknown source, a malformed URL, window or percentile (exit 2).
        """
        if self.source not in USAGE_CHOICES:
            raise ConfigError(f"--usage must be one of {', '.join(USAGE_CHOICES)}, not {self.source!r}")
        if self.prometheus_url is not None:
            check_url(self.prometheus_url)
        return UsageOptions(
            choice=UsageChoice(self.source),
            prometheus_url=self.prometheus_url,
            window_seconds=parse_window(self.window),
            percentile=check_percentile(self.percentile),
            series=self.series,
        )

    def with_window(self, window: str | None, percentile: float | None) -> "UsageSpec":
        """This spec with another window / percentile (None keeps the current one)."""
        return replace(
            self,
            window=self.window if window is None else window,
            percentile=self.percentile if percentile is None else percentile,
        )


def _bearer_token(target: "Target") -> str | None:
    """The bearer token of the target's kubeconfig context, or of the in-cluster service account; None when it
    authenticates otherwise (client certificates). Never logged or shown."""
    configuration = load_configuration(target.kubeconfig, target.context)
    value = configuration.auth_settings().get("BearerToken", {}).get("value")
    if not value:
        return None
    token = str(value)
    return token.split(" ", 1)[1].strip() if token.lower().startswith("bearer ") else token.strip()


def usage_source(target: "Target", client: KubeClient, *, progress: "Progress | None" = None) -> UsageSource | None:
    """The usage source the target asks for on a live cluster; None: the default (metrics.k8s.io)."""
    spec = target.usage
    if spec is None:
        return None
    return build_usage(client, spec.options(), token=lambda: _bearer_token(target), progress=progress)


def snapshot_usage(target: "Target") -> UsageSource | None:
    """On a snapshot: the usage the file keeps (None), or none at all; the live sources cannot be asked.

    Raises:
        ConfigError: --usage prometheus, stats or metrics-server on --from-file.
    """
    spec = target.usage
    if spec is None:
        return None
    options = spec.options()
    if options.choice is UsageChoice.NONE:
        return NoUsage("--usage none: no usage was read; utilisation is by requests")
    if options.choice is not UsageChoice.AUTO or spec.prometheus_url:
        raise ConfigError(
            f"--usage {options.choice.value} reads a live cluster; a snapshot keeps the usage it was taken with",
            hint="use --usage auto (the snapshot's own figures) or none, or take the snapshot with that source",
        )
    return None


def note_window(state: ClusterState, target: "Target") -> ClusterState:
    """Say so when the window or percentile asked for is not what the usage is: a snapshot keeps the window it
    was taken with; the stats summary and metrics.k8s.io have no history (only Prometheus has)."""
    spec = target.usage
    obs = state.observation
    if spec is None or obs is None or (spec.window == DEFAULT_WINDOW and spec.percentile is None):
        return state
    options = spec.options()
    stat = "mean" if options.percentile is None else f"p{options.percentile:g}"
    wanted = f"{stat} over {duration_text(options.window_seconds)}"
    if obs.statistic == wanted:
        return state
    if target.offline and obs.sustained:
        note = f"the snapshot holds usage as {obs.statistic} ({obs.source}), not {wanted}: its figures are used"
    elif target.offline:
        note = f"the snapshot holds {obs.statistic} of {obs.source}: --window / --percentile do not apply"
    else:
        note = f"{wanted} needs Prometheus: the usage is {obs.statistic} of {obs.source}"
    return replace(state, notes=(*state.notes, note), usage_warnings=(*state.usage_warnings, note))


__all__ = [
    "DEFAULT_WINDOW",
    "USAGE_CHOICES",
    "UsageSpec",
    "check_percentile",
    "note_window",
    "parse_window",
    "snapshot_usage",
    "usage_source",
]
