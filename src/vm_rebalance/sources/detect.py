"""Which usage source to read: the ``--usage`` choice, auto-detection, and falling back with a note.

Order (``--usage auto``, the default of `plan`, `inventory`, `report` and `snapshot`):

1. **Prometheus** at ``--prometheus-url`` (or ``$VM_REBALANCE_PROMETHEUS_URL``); otherwise, on
   OpenShift, the **Thanos querier** found through the Route ``openshift-monitoring/thanos-querier``
   (queried with the bearer token of the kubeconfig context, or the pod's service account);
2. the kubelet **stats summary** of every node (instant usage, PSI over 5 minutes; needs
   ``get nodes/proxy``);
3. **metrics.k8s.io** (metrics-server: one instant reading);
4. nothing: utilisation is by requests.

A source that is missing, refused or empty is skipped with a note saying why, and the next one is
read — never a crash. ``--usage prometheus|stats|metrics-server`` starts the chain at that source
(a Prometheus that cannot be reached still falls back, with a warning); ``--usage none`` reads no
usage at all.
"""

import contextlib
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from vm_rebalance.errors import ClusterError, ConfigError, ResourceNotFoundError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.model.usage import UsageSample
from vm_rebalance.sources.kubelet import KubeletStatsUsage
from vm_rebalance.sources.prometheus import PrometheusApi, PrometheusUsage, redacted
from vm_rebalance.sources.usage import MetricsServerUsage, NoUsage, UsageSource

Progress = Callable[[str], None]
TokenProvider = Callable[[], str | None]

URL_ENV = "VM_REBALANCE_PROMETHEUS_URL"
TOKEN_ENV = "VM_REBALANCE_PROMETHEUS_TOKEN"
CA_ENV = "VM_REBALANCE_PROMETHEUS_CA"
THANOS_NAMESPACE = "openshift-monitoring"
THANOS_ROUTE = "thanos-querier"
SERVICE_CA = "/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt"
ROUTES = r.ApiResource("route.openshift.io", "v1", "routes", "Route", True)


class UsageChoice(StrEnum):
    """The ``--usage`` flag."""

    AUTO = "auto"
    PROMETHEUS = "prometheus"
    STATS = "stats"
    METRICS_SERVER = "metrics-server"
    NONE = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageOptions:
    """What the user asked for: the source, Prometheus' URL, the window and the statistic."""

    choice: UsageChoice = UsageChoice.AUTO
    prometheus_url: str | None = None
    window_seconds: float = 3600.0
    percentile: float | None = None
    series: bool = True
    """Also read utilisation over the window (the report's chart); a couple of range queries."""


class ChainedUsage:
    """Read the first source that measures node usage; the ones skipped before it leave a note why."""

    def __init__(self, sources: Sequence[tuple[str, UsageSource]]) -> None:
        self.sources = list(sources)
        self._sample: UsageSample | None = None
        self._used: UsageSource | None = None

    def read_usage(self) -> UsageSample:
        """The first available sample, with the notes of those that were not."""
        if self._sample is not None:
            return self._sample
        notes: list[str] = []
        last: UsageSample | None = None
        for _label, source in self.sources:
            sample = source.read_usage()
            last = sample
            if sample.available:
                self._used = source
                self._sample = _with_notes(sample, notes)
                return self._sample
            notes += [n for n in sample.notes if n not in notes]
        self._sample = _with_notes(last or UsageSample(), notes) if notes else (last or UsageSample())
        return self._sample

    @property
    def used(self) -> UsageSource | None:
        """The source the sample came from (after `read_usage`)."""
        self.read_usage()
        return self._used

    def snapshot_objects(self) -> list[dict[str, Any]]:
        """What the source that answered keeps in a snapshot."""
        used = self.used
        return used.snapshot_objects() if used is not None else []


def _with_notes(sample: UsageSample, before: list[str]) -> UsageSample:
    """The sample with the notes of the sources skipped before it; plans and reports repeat them all."""
    merged = (*before, *(n for n in sample.notes if n not in before))
    return replace(sample, notes=merged, warnings=merged)


def tls_context() -> ssl.SSLContext:
    """The system's trust store, plus ``$VM_REBALANCE_PROMETHEUS_CA`` and the in-cluster service CA when present."""
    context = ssl.create_default_context()
    extra = os.environ.get(CA_ENV)
    if extra:
        try:
            context.load_verify_locations(cafile=extra)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"${CA_ENV} does not name a readable PEM file ({type(exc).__name__})") from exc
    if os.path.exists(SERVICE_CA):
        with contextlib.suppress(OSError, ssl.SSLError):
            context.load_verify_locations(cafile=SERVICE_CA)
    return context


def check_url(url: str) -> str:
    """A usable Prometheus URL, or a ConfigError (bad usage) naming what is wrong (never the credentials)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = redacted(url) if parts.scheme else repr(url[:40])
        raise ConfigError(f"--prometheus-url must be an http:// or https:// URL, not {shown}")
    return url


def thanos_route_host(client: KubeClient, notes: list[str]) -> str | None:
    """The host of OpenShift's Thanos querier Route, or None (not OpenShift, not readable: a note says which)."""
    try:
        route = client.get(ROUTES, THANOS_ROUTE, namespace=THANOS_NAMESPACE)
    except ResourceNotFoundError:
        return None  # not OpenShift (no Route kind), or no Thanos querier
    except ClusterError as exc:
        notes.append(f"the Thanos querier Route ({THANOS_NAMESPACE}/{THANOS_ROUTE}) is not readable ({exc})")
        return None
    host = (route.get("spec") or {}).get("host")
    return str(host) if host else None


def _is_cluster_thanos(url: str, route_host: str | None) -> bool:
    host = urlsplit(url).hostname or ""
    return (
        bool(route_host and host == route_host)
        or host.endswith(f".{THANOS_NAMESPACE}.svc")
        or (f".{THANOS_NAMESPACE}.svc." in host)
    )


def build_usage(
    client: KubeClient,
    options: UsageOptions,
    *,
    token: TokenProvider | None = None,
    progress: Progress | None = None,
    transport: Any = None,
) -> UsageSource:
    """The usage source for ``options`` on ``client``'s cluster (see the module docstring for the order).

    ``token`` returns the bearer token of the kubeconfig context (or service account); it is called
    only for OpenShift's Thanos querier (the discovered Route, or a URL naming it) and sent over
    HTTPS only. ``$VM_REBALANCE_PROMETHEUS_TOKEN`` overrides it for any HTTPS Prometheus.

    Raises:
        ConfigError: a malformed --prometheus-url or CA file.
    """
    if options.choice is UsageChoice.NONE:
        return NoUsage("--usage none: no usage was read; utilisation is by requests")
    chain: list[tuple[str, UsageSource]] = []
    notes: list[str] = []
    if options.choice in (UsageChoice.AUTO, UsageChoice.PROMETHEUS):
        prometheus = _prometheus(client, options, notes, token=token, progress=progress, transport=transport)
        if prometheus is not None:
            chain.append(("prometheus", prometheus))
        elif options.choice is UsageChoice.PROMETHEUS:
            notes.append(
                "--usage prometheus: no Prometheus URL (--prometheus-url or $VM_REBALANCE_PROMETHEUS_URL) "
                "and no OpenShift Thanos querier found"
            )
    if options.choice in (UsageChoice.AUTO, UsageChoice.PROMETHEUS, UsageChoice.STATS):
        quiet = options.choice is UsageChoice.AUTO
        chain.append(("stats", KubeletStatsUsage(client, progress=progress, quiet_if_absent=quiet)))
    chain.append(("metrics-server", MetricsServerUsage(client, progress=progress)))
    if notes:
        chain.insert(0, ("notes", _Notes(notes)))
    return ChainedUsage(chain)


class _Notes:
    """Notes from detection, carried as an empty sample at the head of the chain."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = tuple(notes)

    def read_usage(self) -> UsageSample:
        return UsageSample(notes=self.notes)

    def snapshot_objects(self) -> list[dict[str, Any]]:
        return []


def _prometheus(
    client: KubeClient,
    options: UsageOptions,
    notes: list[str],
    *,
    token: TokenProvider | None,
    progress: Progress | None,
    transport: Any,
) -> PrometheusUsage | None:
    url = options.prometheus_url or os.environ.get(URL_ENV) or None
    route_host: str | None = None
    label = "Prometheus"
    if url is None:
        route_host = thanos_route_host(client, notes)
        if route_host is None:
            return None
        url = f"https://{route_host}"
        label = "Thanos querier"
    else:
        check_url(url)
        if urlsplit(url).scheme == "https" and not os.environ.get(TOKEN_ENV):
            route_host = thanos_route_host(client, [])
        if _is_cluster_thanos(url, route_host):
            label = "Thanos querier"
    bearer = os.environ.get(TOKEN_ENV) or None
    if bearer is None and label == "Thanos querier" and token is not None:
        bearer = token()
        if bearer is None:
            notes.append(
                "the kubeconfig context has no bearer token for the Thanos querier (client certificates "
                f"cannot be forwarded): set ${TOKEN_ENV}"
            )
    api = PrometheusApi(
        url,
        token=bearer,
        verify=tls_context() if urlsplit(url).scheme == "https" else True,
        transport=transport,
    )
    return PrometheusUsage(
        api,
        window_seconds=options.window_seconds,
        percentile=options.percentile,
        series=options.series,
        label=label,
        progress=progress,
    )
