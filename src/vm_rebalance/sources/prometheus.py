"""Usage over a window from Prometheus (or OpenShift's Thanos querier): KubeVirt's and node-exporter's metrics.

What is asked (``W`` the window, e.g. ``3600s``; node series keyed by their ``instance`` label
without a port — kube-prometheus and OpenShift relabel node-exporter's ``instance`` to the node
name — or by a ``node`` label where there is one):

- node CPU, cores busy: ``rate(node_cpu_seconds_total{mode!~"idle|iowait|steal"}[W])`` summed per
  node (percentile ``p``: ``quantile_over_time(p, (<busy cores over R>)[W:R])``);
- node memory used: ``avg_over_time(MemTotal[W]) − avg_over_time(MemAvailable[W])``
  (percentile: ``max_over_time(MemTotal[W]) − quantile_over_time(1 − p, MemAvailable[W])``);
- node PSI, always the mean: ``rate(node_pressure_{cpu_waiting,memory_waiting,memory_stalled,
  io_waiting}_seconds_total[W])``;
- VM CPU, cores: ``rate(kubevirt_vmi_cpu_usage_seconds_total[W])`` per (namespace, name)
  (percentile: over rates of ``R``);
- VM memory: ``avg_over_time(kubevirt_vmi_memory_resident_bytes[W])`` — the QEMU process, as the
  launcher pod's working set (percentile: ``quantile_over_time``);
- VM dirty rate: ``avg_over_time(kubevirt_vmi_dirty_rate_bytes_per_second[W])`` (or the percentile);
- VM network: ``rate(kubevirt_vmi_network_{receive,transmit}_bytes_total[W])`` summed.

``R`` (the rate window inside a percentile's subquery) and ``S`` (its step) are
``max(2m, W/240)``: at least two samples per rate at the usual 30 s scrape interval, at most
~240 points per series. The utilisation series for charts is a range query of the same
expressions over ``R`` at ~60 steps. Duplicate scrapes of one exporter are collapsed with ``max``
before summing.

A query that fails or finds nothing leaves that part out with a note (never a crash): no
node-exporter → no node usage (the next source is tried), no PSI → no pressure, no KubeVirt
metrics → VMs without usage (their requests count). Credentials: a bearer token when one is
given (OpenShift's Thanos querier takes the kubeconfig context's or the service account's);
it is sent over HTTPS only and never appears in a message.
"""

import math
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from vm_rebalance.kube.sustained import sustained_document
from vm_rebalance.model import Resources
from vm_rebalance.model.signals import Observation, Pressure, UtilisationSeries, duration_text
from vm_rebalance.model.usage import UsageSample

Progress = Callable[[str], None]

DEFAULT_TIMEOUT_SECONDS = 60.0
MIN_RATE_SECONDS = 120.0
MAX_POINTS = 240
SERIES_POINTS = 60

BUSY = 'node_cpu_seconds_total{mode!~"idle|iowait|steal"}'


def redacted(url: str) -> str:
    """A URL as messages show it: scheme, host and port (no credentials, path or query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme else "<prometheus>"


class PrometheusQueryError(Exception):
    """A query failed: unreachable, refused, or Prometheus' own error (the message is safe to show)."""


@dataclass(frozen=True, slots=True)
class Series:
    """One result series: its labels and its values (one for an instant query)."""

    labels: Mapping[str, str]
    values: tuple[tuple[float, float], ...]


class PrometheusApi:
    """Prometheus' HTTP query API (``/api/v1/query``, ``/api/v1/query_range``), which Thanos serves too."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {redacted(url)}")
        self.url = url.rstrip("/")
        self.where = redacted(url)
        headers = {"Accept": "application/json"}
        if token and parts.scheme == "https":
            headers["Authorization"] = f"Bearer {token}"
        self.sends_token = "Authorization" in headers
        self._client = httpx.Client(
            headers=headers, verify=verify, timeout=timeout_seconds, transport=transport, follow_redirects=False
        )
        self.queries = 0
        self.seconds = 0.0

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        self.queries += 1
        started = time.perf_counter()
        try:
            response = self._client.post(f"{self.url}{path}", data=dict(params))
        except httpx.HTTPError as exc:
            raise PrometheusQueryError(f"{self.where} is unreachable ({type(exc).__name__})") from None
        finally:
            self.seconds += time.perf_counter() - started
        if response.status_code in (401, 403):
            raise PrometheusQueryError(
                f"{self.where} refused the query ({response.status_code}"
                + (
                    "; the identity needs read access to metrics, e.g. the cluster-monitoring-view ClusterRole"
                    if self.sends_token
                    else "; no bearer token was sent"
                )
                + ")"
            )
        try:
            body = response.json()
        except ValueError:
            raise PrometheusQueryError(
                f"{self.where} answered {response.status_code} with something that is not Prometheus' JSON"
            ) from None
        if not isinstance(body, Mapping) or body.get("status") != "success":
            error = str(body.get("error", "")) if isinstance(body, Mapping) else ""
            raise PrometheusQueryError(f"{self.where}: query failed ({response.status_code}): {error[:200]}")
        return body.get("data") or {}

    def query(self, expr: str, at: float) -> list[Series]:
        """An instant query at unix time ``at``."""
        data = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        return _series(data)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query."""
        data = self._get(
            "/api/v1/query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        return _series(data)


def _series(data: Any) -> list[Series]:
    out = []
    for item in data.get("result") or () if isinstance(data, Mapping) else ():
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        if "value" in item:
            raw = [item["value"]]
        else:
            raw = item.get("values") or []
        values = []
        for t, v in raw:
            x = float(v)
            if math.isfinite(x):
                values.append((float(t), x))
        out.append(Series(labels, tuple(values)))
    return out


def node_key(labels: Mapping[str, str]) -> str | None:
    """The node a node-exporter series belongs to: its ``node`` label, else ``instance`` without the port."""
    node = labels.get("node")
    if node:
        return node
    instance = labels.get("instance")
    if not instance:
        return None
    if instance.startswith("["):  # [ipv6]:port
        return instance[1:].split("]", 1)[0]
    return instance.rsplit(":", 1)[0] if instance.count(":") == 1 else instance


def _vm_key(labels: Mapping[str, str]) -> tuple[str, str] | None:
    ns, name = labels.get("namespace"), labels.get("name")
    return (ns, name) if ns and name else None


def _seconds(s: float) -> str:
    return f"{round(s)}s"


class PrometheusUsage:
    """Usage over a window (mean or a percentile), PSI, dirty and network rates from Prometheus / Thanos."""

    def __init__(
        self,
        api: PrometheusApi,
        *,
        window_seconds: float = 3600.0,
        percentile: float | None = None,
        series: bool = True,
        label: str = "Prometheus",
        progress: Progress | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (math.isfinite(window_seconds) and window_seconds > 0):
            raise ValueError("the window must be a positive number of seconds")
        if percentile is not None and not 0 < percentile <= 100:
            raise ValueError("the percentile must be above 0 and at most 100")
        self.api = api
        self.window = float(window_seconds)
        self.percentile = percentile
        self.series = series
        self.label = label
        self._progress = progress or (lambda _msg: None)
        self._clock = clock
        self._sample: UsageSample | None = None
        self.elapsed_seconds = 0.0

    # ------------------------------------------------------------------ queries

    @property
    def _step(self) -> float:
        return max(MIN_RATE_SECONDS, math.ceil(self.window / MAX_POINTS / 15) * 15)

    def _stat(self, rate: str) -> str:
        """The window's statistic of ``rate``, an expression with ``{R}`` for its rate window: the mean is
        the rate over the whole window; a percentile is taken over rates of ``R`` at steps of ``R``."""
        w = _seconds(self.window)
        if self.percentile is None:
            return rate.replace("<R>", w)
        step = _seconds(self._step)
        return f"quantile_over_time({self.percentile / 100:g}, ({rate.replace('<R>', step)})[{w}:{step}])"

    def _gauge(self, metric: str, *, by: str) -> str:
        w = _seconds(self.window)
        q = None if self.percentile is None else self.percentile / 100
        over = f"avg_over_time({metric}[{w}])" if q is None else f"quantile_over_time({q:g}, {metric}[{w}])"
        return f"max by ({by}) ({over})"

    def _node_cpu(self) -> str:
        busy = f"sum by (instance, node) (max by (instance, node, cpu, mode) (rate({BUSY}[<R>])))"
        return self._stat(busy)

    def _node_memory(self) -> str:
        w = _seconds(self.window)
        if self.percentile is None:
            return (
                f"max by (instance, node) (avg_over_time(node_memory_MemTotal_bytes[{w}]))"
                f" - max by (instance, node) (avg_over_time(node_memory_MemAvailable_bytes[{w}]))"
            )
        q = 1 - self.percentile / 100
        return (
            f"max by (instance, node) (max_over_time(node_memory_MemTotal_bytes[{w}]))"
            f" - max by (instance, node) (quantile_over_time({q:g}, node_memory_MemAvailable_bytes[{w}]))"
        )

    def _pressure(self, counter: str) -> str:
        return f"max by (instance, node) (rate({counter}[{_seconds(self.window)}]))"

    def _vm_cpu(self) -> str:
        rate = "sum by (namespace, name) (rate(kubevirt_vmi_cpu_usage_seconds_total[<R>]))"
        return self._stat(rate)

    def _vm_network(self) -> str:
        w = _seconds(self.window)
        return (
            f"sum by (namespace, name) (rate(kubevirt_vmi_network_receive_bytes_total[{w}]))"
            f" + sum by (namespace, name) (rate(kubevirt_vmi_network_transmit_bytes_total[{w}]))"
        )

    def _util_range(self, which: str, end: float) -> list[Series]:
        """Node CPU or memory utilisation (fractions of capacity) over the window, ~60 points."""
        step = max(15.0, math.ceil(self.window / SERIES_POINTS / 15) * 15)
        rate = _seconds(max(MIN_RATE_SECONDS, step))
        if which == "cpu":
            expr = (
                f"sum by (instance, node) (max by (instance, node, cpu, mode) (rate({BUSY}[{rate}])))"
                ' / count by (instance, node) (max by (instance, node, cpu) (node_cpu_seconds_total{mode="idle"}))'
            )
        else:
            expr = (
                "1 - max by (instance, node) (node_memory_MemAvailable_bytes)"
                " / max by (instance, node) (node_memory_MemTotal_bytes)"
            )
        # The first point needs a full rate window of history before it.
        return self.api.query_range(expr, end - self.window + max(MIN_RATE_SECONDS, step), end, step)

    # ------------------------------------------------------------------ reading

    def read_usage(self) -> UsageSample:
        """Node and VM usage over the window with PSI; parts that fail or are absent are notes."""
        if self._sample is None:
            started = time.perf_counter()
            self._sample = self._read()
            self.elapsed_seconds = time.perf_counter() - started
        return self._sample

    def _try(self, what: str, notes: list[str], fn: Callable[[], list[Series]]) -> list[Series] | None:
        try:
            return fn()
        except PrometheusQueryError as exc:
            note = f"{self.label} {what}: {exc}"
            if note not in notes:
                notes.append(note)
            return None

    def _read(self) -> UsageSample:
        end = self._clock()
        notes: list[str] = []
        self._progress(f"querying {self.label} at {self.api.where} ({self._statistic()})")
        cpu = self._try("node CPU", notes, lambda: self.api.query(self._node_cpu(), end))
        if cpu is None:
            # Unreachable or refused: nothing else will work either.
            return UsageSample(source=self.label, notes=tuple(notes))
        mem = self._try("node memory", notes, lambda: self.api.query(self._node_memory(), end)) or []
        nodes: dict[str, Resources] = {}
        cores = {k: s.values[-1][1] for s in cpu if s.values and (k := node_key(s.labels))}
        used = {k: s.values[-1][1] for s in mem if s.values and (k := node_key(s.labels))}
        for name in sorted(set(cores) | set(used)):
            nodes[name] = Resources(round(cores.get(name, 0.0) * 1000), round(used.get(name, 0.0)))
        if not nodes:
            notes.append(
                f"{self.label} has no node-exporter series (node_cpu_seconds_total, node_memory_*) "
                f"over the last {duration_text(self.window)}"
            )
            return UsageSample(source=self.label, notes=tuple(notes))
        missing_mem = sorted(set(cores) - set(used))
        if missing_mem:
            notes.append(f"{self.label}: no node memory series for {len(missing_mem)} node(s), e.g. {missing_mem[0]}")
        pressure = self._read_pressure(end, notes)
        vms, dirty, network = self._read_vms(end, notes)
        series: dict[str, UtilisationSeries] = {}
        if self.series:
            cpu_series = self._try("utilisation series", notes, lambda: self._util_range("cpu", end))
            mem_series = self._try("utilisation series", notes, lambda: self._util_range("memory", end))
            if cpu_series and mem_series:
                series = _merge_series(cpu_series, mem_series)
        observation = Observation(
            source=self.label,
            window_seconds=self.window,
            percentile=self.percentile,
            pressure_window_seconds=self.window if pressure else None,
            end=datetime.fromtimestamp(end, UTC),
            series=series,
        )
        return UsageSample(
            nodes=nodes,
            vms=vms,
            measured_at=observation.end,
            source=self.label,
            notes=tuple(notes),
            pressure=pressure,
            dirty_rates=dirty,
            network_rates=network,
            observation=observation,
        )

    def _statistic(self) -> str:
        stat = "mean" if self.percentile is None else f"p{self.percentile:g}"
        return f"{stat} over {duration_text(self.window)}"

    def _read_pressure(self, end: float, notes: list[str]) -> dict[str, Pressure]:
        found: dict[str, dict[str, float]] = {}
        for field, counter in (
            ("cpu", "node_pressure_cpu_waiting_seconds_total"),
            ("memory", "node_pressure_memory_waiting_seconds_total"),
            ("memory_full", "node_pressure_memory_stalled_seconds_total"),
            ("io", "node_pressure_io_waiting_seconds_total"),
        ):
            expr = self._pressure(counter)
            rows = self._try("PSI", notes, lambda expr=expr: self.api.query(expr, end)) or []  # type: ignore[misc]
            for s in rows:
                key = node_key(s.labels)
                if key and s.values:
                    found.setdefault(key, {})[field] = min(1.0, max(0.0, s.values[-1][1]))
        if not found:
            notes.append(
                f"{self.label} has no PSI (node_pressure_*: node-exporter's pressure collector on a kernel "
                "with PSI, cgroup v2): hot spots are judged on utilisation alone"
            )
        return {k: Pressure(**v) for k, v in found.items()}

    def _read_vms(
        self, end: float, notes: list[str]
    ) -> tuple[dict[tuple[str, str], Resources], dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        cpu = self._try("VM CPU", notes, lambda: self.api.query(self._vm_cpu(), end)) or []
        mem = (
            self._try(
                "VM memory",
                notes,
                lambda: self.api.query(self._gauge("kubevirt_vmi_memory_resident_bytes", by="namespace, name"), end),
            )
            or []
        )
        dirty_rows = (
            self._try(
                "VM dirty rate",
                notes,
                lambda: self.api.query(
                    self._gauge("kubevirt_vmi_dirty_rate_bytes_per_second", by="namespace, name"), end
                ),
            )
            or []
        )
        net_rows = self._try("VM network", notes, lambda: self.api.query(self._vm_network(), end)) or []
        cores = {k: s.values[-1][1] for s in cpu if s.values and (k := _vm_key(s.labels))}
        resident = {k: s.values[-1][1] for s in mem if s.values and (k := _vm_key(s.labels))}
        vms: dict[tuple[str, str], Resources] = {}
        for key in set(cores) & set(resident):
            vms[key] = Resources(round(cores[key] * 1000), round(resident[key]))
        if not vms:
            notes.append(
                f"{self.label} has no KubeVirt VM metrics (kubevirt_vmi_cpu_usage_seconds_total, "
                "kubevirt_vmi_memory_resident_bytes): VMs count with their requests"
            )
        dirty = {k: round(s.values[-1][1]) for s in dirty_rows if s.values and (k := _vm_key(s.labels))}
        network = {k: round(s.values[-1][1]) for s in net_rows if s.values and (k := _vm_key(s.labels))}
        return vms, dirty, network

    def snapshot_objects(self) -> list[dict[str, Any]]:
        """One ``SustainedUsage`` object, so a snapshot replays these figures offline."""
        sample = self.read_usage()
        return [sustained_document(sample)] if sample.available else []


def _merge_series(cpu: list[Series], mem: list[Series]) -> dict[str, UtilisationSeries]:
    by_node_cpu = {k: dict(s.values) for s in cpu if (k := node_key(s.labels))}
    by_node_mem = {k: dict(s.values) for s in mem if (k := node_key(s.labels))}
    out = {}
    for name in sorted(set(by_node_cpu) & set(by_node_mem)):
        c, m = by_node_cpu[name], by_node_mem[name]
        times = sorted(set(c) & set(m))  # a point needs both values
        if times:
            out[name] = UtilisationSeries(
                tuple(times),
                tuple(min(1.0, max(0.0, c[t])) for t in times),
                tuple(min(1.0, max(0.0, m[t])) for t in times),
            )
    return out
