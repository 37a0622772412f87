"""Server-side ``Table`` responses (``Accept: application/json;as=Table;g=meta.k8s.io``), §8.8.

Columns follow kube-apiserver's printers for the built-in kinds and the CRDs' additionalPrinterColumns
for KubeVirt (§1.1, §2.1, §3). Rows carry ``PartialObjectMetadata`` unless ``includeObject`` says otherwise.
"""

import datetime
import json
import re
from collections.abc import Callable
from typing import Any

from .resources import ResourceType

Obj = dict[str, Any]
Cell = Any
Column = tuple[str, str, str, int, Callable[[Obj, datetime.datetime], Cell]]  # name, type, format, priority, fn


def human_duration(seconds: float) -> str:
    """kubectl's short age format (``5s``, ``3m20s``, ``4h``, ``2d3h``, ``1y``)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _age(obj: Obj, now: datetime.datetime) -> str:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    if created is None:
        return "<unknown>"
    return human_duration((now - created).total_seconds())


def _name(obj: Obj, _: datetime.datetime) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _get(obj: Obj, *path: str | int) -> Any:
    cur: Any = obj
    for p in path:
        if isinstance(p, int):
            if not isinstance(cur, list) or len(cur) <= p:
                return None
            cur = cur[p]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
    return cur


def _condition(obj: Obj, ctype: str) -> Obj | None:
    for c in _get(obj, "status", "conditions") or []:
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def _condition_status(ctype: str) -> Callable[[Obj, datetime.datetime], Cell]:
    def cell(obj: Obj, _: datetime.datetime) -> Cell:
        c = _condition(obj, ctype)
        return c.get("status") if c else None

    return cell


def _field(*path: str | int) -> Callable[[Obj, datetime.datetime], Cell]:
    return lambda obj, _: _get(obj, *path)


# -- built-in printers -----------------------------------------------------------------------------------


def _node_status(obj: Obj, _: datetime.datetime) -> str:
    ready = _condition(obj, "Ready")
    if ready is None:
        status = "Unknown"
    else:
        status = {"True": "Ready", "False": "NotReady"}.get(str(ready.get("status")), "Unknown")
    if _get(obj, "spec", "unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(obj: Obj, _: datetime.datetime) -> str:
    labels = _get(obj, "metadata", "labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    if labels.get("kubernetes.io/role"):
        roles.append(labels["kubernetes.io/role"])
    return ",".join(r for r in roles if r) or "<none>"


def _node_address(kind: str) -> Callable[[Obj, datetime.datetime], Cell]:
    def cell(obj: Obj, _: datetime.datetime) -> Cell:
        for a in _get(obj, "status", "addresses") or []:
            if isinstance(a, dict) and a.get("type") == kind:
                return a.get("address")
        return "<none>"

    return cell


def _pod_ready(obj: Obj, _: datetime.datetime) -> str:
    containers = _get(obj, "spec", "containers") or []
    statuses = _get(obj, "status", "containerStatuses") or []
    ready = sum(1 for s in statuses if isinstance(s, dict) and s.get("ready"))
    return f"{ready}/{len(containers)}"


def _pod_status(obj: Obj, _: datetime.datetime) -> str:
    if _get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    return str(_get(obj, "status", "reason") or _get(obj, "status", "phase") or "Unknown")


def _pod_restarts(obj: Obj, _: datetime.datetime) -> int:
    return sum(
        int(s.get("restartCount") or 0) for s in _get(obj, "status", "containerStatuses") or [] if isinstance(s, dict)
    )


def _none_if_empty(fn: Callable[[Obj, datetime.datetime], Cell]) -> Callable[[Obj, datetime.datetime], Cell]:
    def cell(obj: Obj, now: datetime.datetime) -> Cell:
        value = fn(obj, now)
        return "<none>" if value in (None, "") else value

    return cell


def _access_modes(obj: Obj, _: datetime.datetime) -> str:
    short = {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }
    modes = _get(obj, "status", "accessModes") or _get(obj, "spec", "accessModes") or []
    return ",".join(short.get(m, m) for m in modes)


def _event_object(obj: Obj, _: datetime.datetime) -> str:
    kind = str(_get(obj, "involvedObject", "kind") or "").lower()
    return f"{kind}/{_get(obj, 'involvedObject', 'name') or ''}"


def _event_last_seen(obj: Obj, now: datetime.datetime) -> str:
    ts = parse_time(
        obj.get("lastTimestamp")
        or obj.get("deprecatedLastTimestamp")
        or _get(obj, "series", "lastObservedTime")
        or obj.get("eventTime")
        or _get(obj, "metadata", "creationTimestamp")
    )
    return human_duration((now - ts).total_seconds()) if ts else "<unknown>"


def _count(*fields: str) -> Callable[[Obj, datetime.datetime], Cell]:
    def cell(obj: Obj, _: datetime.datetime) -> int:
        return sum(len(obj.get(f) or ()) for f in fields)

    return cell


def _service_external_ip(obj: Obj, _: datetime.datetime) -> str:
    spec = obj.get("spec") or {}
    stype = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if stype == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    if stype == "LoadBalancer":
        ingress = _get(obj, "status", "loadBalancer", "ingress") or []
        found = [i.get("ip") or i.get("hostname") for i in ingress if isinstance(i, dict)]
        external += [f for f in found if f]
        return ",".join(external) if external else "<pending>"
    return ",".join(external) if external else "<none>"


def _service_ports(obj: Obj, _: datetime.datetime) -> str:
    parts = []
    for port in _get(obj, "spec", "ports") or []:
        if not isinstance(port, dict):
            continue
        node_port = f":{port['nodePort']}" if port.get("nodePort") else ""
        parts.append(f"{port.get('port')}{node_port}/{port.get('protocol') or 'TCP'}")
    return ",".join(parts) if parts else "<none>"


def _label_map(*path: str) -> Callable[[Obj, datetime.datetime], Cell]:
    def cell(obj: Obj, _: datetime.datetime) -> str:
        labels = _get(obj, *path) or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) if labels else "<none>"

    return cell


def _deployment_ready(obj: Obj, _: datetime.datetime) -> str:
    return f"{_get(obj, 'status', 'readyReplicas') or 0}/{_get(obj, 'spec', 'replicas') or 0}"


def _containers(field: str) -> Callable[[Obj, datetime.datetime], Cell]:
    def cell(obj: Obj, _: datetime.datetime) -> str:
        containers = _get(obj, "spec", "template", "spec", "containers") or []
        return ",".join(str(c.get(field) or "") for c in containers if isinstance(c, dict))

    return cell


def _role_ref(obj: Obj, _: datetime.datetime) -> str:
    ref = obj.get("roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _subjects(kind: str) -> Callable[[Obj, datetime.datetime], Cell]:
    def cell(obj: Obj, _: datetime.datetime) -> str:
        names = []
        for s in obj.get("subjects") or []:
            if not isinstance(s, dict) or s.get("kind") != kind:
                continue
            if kind == "ServiceAccount":
                names.append(f"{s.get('namespace') or _get(obj, 'metadata', 'namespace') or ''}/{s.get('name')}")
            else:
                names.append(str(s.get("name")))
        return ", ".join(names)

    return cell


def _created_at(obj: Obj, _: datetime.datetime) -> Cell:
    return _get(obj, "metadata", "creationTimestamp")


def _pdb_value(field: str) -> Callable[[Obj, datetime.datetime], Cell]:
    def cell(obj: Obj, _: datetime.datetime) -> str:
        value = _get(obj, "spec", field)
        return "N/A" if value is None else str(value)

    return cell


_NAME: Column = ("Name", "string", "name", 0, _name)
_AGE: Column = ("Age", "string", "", 0, _age)
_CRD_AGE: Column = ("Age", "date", "", 0, _age)

COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("", "nodes"): [
        _NAME,
        ("Status", "string", "", 0, _node_status),
        ("Roles", "string", "", 0, _node_roles),
        _AGE,
        ("Version", "string", "", 0, _field("status", "nodeInfo", "kubeletVersion")),
        ("Internal-IP", "string", "", 1, _node_address("InternalIP")),
        ("External-IP", "string", "", 1, _node_address("ExternalIP")),
        ("OS-Image", "string", "", 1, _field("status", "nodeInfo", "osImage")),
        ("Kernel-Version", "string", "", 1, _field("status", "nodeInfo", "kernelVersion")),
        ("Container-Runtime", "string", "", 1, _field("status", "nodeInfo", "containerRuntimeVersion")),
    ],
    ("", "pods"): [
        _NAME,
        ("Ready", "string", "", 0, _pod_ready),
        ("Status", "string", "", 0, _pod_status),
        ("Restarts", "string", "", 0, _pod_restarts),
        _AGE,
        ("IP", "string", "", 1, _none_if_empty(_field("status", "podIP"))),
        ("Node", "string", "", 1, _none_if_empty(_field("spec", "nodeName"))),
        ("Nominated Node", "string", "", 1, _none_if_empty(_field("status", "nominatedNodeName"))),
        ("Readiness Gates", "string", "", 1, lambda o, _: "<none>"),
    ],
    ("", "namespaces"): [_NAME, ("Status", "string", "", 0, _field("status", "phase")), _AGE],
    ("", "persistentvolumeclaims"): [
        _NAME,
        ("Status", "string", "", 0, _field("status", "phase")),
        ("Volume", "string", "", 0, _field("spec", "volumeName")),
        ("Capacity", "string", "", 0, _field("status", "capacity", "storage")),
        ("Access Modes", "string", "", 0, _access_modes),
        ("StorageClass", "string", "", 0, _field("spec", "storageClassName")),
        _AGE,
        ("VolumeMode", "string", "", 1, _field("spec", "volumeMode")),
    ],
    ("", "events"): [
        ("Last Seen", "string", "", 0, _event_last_seen),
        ("Type", "string", "", 0, _field("type")),
        ("Reason", "string", "", 0, _field("reason")),
        ("Object", "string", "", 0, _event_object),
        ("Message", "string", "", 0, _field("message")),
    ],
    ("events.k8s.io", "events"): [
        ("Last Seen", "string", "", 0, _event_last_seen),
        ("Type", "string", "", 0, _field("type")),
        ("Reason", "string", "", 0, _field("reason")),
        (
            "Object",
            "string",
            "",
            0,
            lambda o, _: f"{str(_get(o, 'regarding', 'kind') or '').lower()}/{_get(o, 'regarding', 'name') or ''}",
        ),
        ("Message", "string", "", 0, _field("note")),
    ],
    ("coordination.k8s.io", "leases"): [_NAME, ("Holder", "string", "", 0, _field("spec", "holderIdentity")), _AGE],
    ("", "serviceaccounts"): [_NAME, ("Secrets", "string", "", 0, _count("secrets")), _AGE],
    ("", "configmaps"): [_NAME, ("Data", "string", "", 0, _count("data", "binaryData")), _AGE],
    ("", "secrets"): [
        _NAME,
        ("Type", "string", "", 0, _field("type")),
        ("Data", "string", "", 0, _count("data")),
        _AGE,
    ],
    ("", "services"): [
        _NAME,
        ("Type", "string", "", 0, _field("spec", "type")),
        ("Cluster-IP", "string", "", 0, _none_if_empty(_field("spec", "clusterIP"))),
        ("External-IP", "string", "", 0, _service_external_ip),
        ("Port(s)", "string", "", 0, _service_ports),
        _AGE,
        ("Selector", "string", "", 1, _label_map("spec", "selector")),
    ],
    ("apps", "deployments"): [
        _NAME,
        ("Ready", "string", "", 0, _deployment_ready),
        ("Up-to-date", "string", "", 0, lambda o, _: _get(o, "status", "updatedReplicas") or 0),
        ("Available", "string", "", 0, lambda o, _: _get(o, "status", "availableReplicas") or 0),
        _AGE,
        ("Containers", "string", "", 1, _containers("name")),
        ("Images", "string", "", 1, _containers("image")),
        ("Selector", "string", "", 1, _label_map("spec", "selector", "matchLabels")),
    ],
    ("rbac.authorization.k8s.io", "clusterroles"): [_NAME, ("Created At", "date", "", 0, _created_at)],
    ("rbac.authorization.k8s.io", "roles"): [_NAME, ("Created At", "date", "", 0, _created_at)],
    ("rbac.authorization.k8s.io", "clusterrolebindings"): [
        _NAME,
        ("Role", "string", "", 0, _role_ref),
        _AGE,
        ("Users", "string", "", 1, _subjects("User")),
        ("Groups", "string", "", 1, _subjects("Group")),
        ("ServiceAccounts", "string", "", 1, _subjects("ServiceAccount")),
    ],
    ("rbac.authorization.k8s.io", "rolebindings"): [
        _NAME,
        ("Role", "string", "", 0, _role_ref),
        _AGE,
        ("Users", "string", "", 1, _subjects("User")),
        ("Groups", "string", "", 1, _subjects("Group")),
        ("ServiceAccounts", "string", "", 1, _subjects("ServiceAccount")),
    ],
    ("policy", "poddisruptionbudgets"): [
        _NAME,
        ("Min Available", "string", "", 0, _pdb_value("minAvailable")),
        ("Max Unavailable", "string", "", 0, _pdb_value("maxUnavailable")),
        ("Allowed Disruptions", "integer", "", 0, lambda o, _: _get(o, "status", "disruptionsAllowed") or 0),
        _AGE,
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        _NAME,
        ("Created At", "date", "", 0, lambda o, _: _get(o, "metadata", "creationTimestamp")),
    ],
    # CRD additionalPrinterColumns (kubevirt-api.md §1.1, §2.1, §3)
    ("kubevirt.io", "virtualmachines"): [
        _NAME,
        _CRD_AGE,
        ("Status", "string", "", 0, _field("status", "printableStatus")),
        ("Ready", "string", "", 0, _condition_status("Ready")),
    ],
    ("kubevirt.io", "virtualmachineinstances"): [
        _NAME,
        _CRD_AGE,
        ("Phase", "string", "", 0, _field("status", "phase")),
        ("IP", "string", "", 0, _field("status", "interfaces", 0, "ipAddress")),
        ("NodeName", "string", "", 0, _field("status", "nodeName")),
        ("Ready", "string", "", 0, _condition_status("Ready")),
        ("Live-Migratable", "string", "", 1, _condition_status("LiveMigratable")),
        ("Paused", "string", "", 1, _condition_status("Paused")),
    ],
    ("kubevirt.io", "virtualmachineinstancemigrations"): [
        _NAME,
        ("Phase", "string", "", 0, _field("status", "phase")),
        ("VMI", "string", "", 0, _field("spec", "vmiName")),
    ],
    ("kubevirt.io", "kubevirts"): [_NAME, _CRD_AGE, ("Phase", "string", "", 0, _field("status", "phase"))],
    ("cdi.kubevirt.io", "datavolumes"): [
        _NAME,
        ("Phase", "string", "", 0, _field("status", "phase")),
        ("Progress", "string", "", 0, _field("status", "progress")),
        ("Restarts", "integer", "", 0, _field("status", "restartCount")),
        _CRD_AGE,
    ],
}

_DESCRIPTIONS = {
    "Name": "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically.",
    "Age": "CreationTimestamp is a timestamp representing the server time when this object was created.",
}


def partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


_JSONPATH_TOKEN = re.compile(
    r"""\.([A-Za-z0-9_\-/]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["']([^"']*)["']\)\]"""
)


def jsonpath_values(obj: Any, path: str) -> list[Any]:
    """The values a CRD printer column's JSONPath selects: ``.a.b``, ``.a[0]``, ``.a[*].b`` and
    ``.conditions[?(@.type=="Ready")].status`` (the forms additionalPrinterColumns use)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    current = [obj]
    pos = 0
    while pos < len(path):
        m = _JSONPATH_TOKEN.match(path, pos)
        if m is None:
            return []
        pos = m.end()
        nxt: list[Any] = []
        name, index, fkey, fvalue = m.groups()
        for value in current:
            if name is not None:
                if isinstance(value, dict) and name in value:
                    nxt.append(value[name])
            elif index is not None:
                if isinstance(value, list):
                    if index == "*":
                        nxt.extend(value)
                    elif int(index) < len(value):
                        nxt.append(value[int(index)])
            elif isinstance(value, list):
                for item in value:
                    got = _get(item, *fkey.split("."))
                    if got is not None and str(got) == fvalue:
                        nxt.append(item)
        current = nxt
    return current


def _printer_cell(path: str, ctype: str) -> Callable[[Obj, datetime.datetime], Cell]:
    def cell(obj: Obj, now: datetime.datetime) -> Cell:
        values = jsonpath_values(obj, path)
        if not values:
            return None
        value = values[0] if len(values) == 1 else ",".join(str(v) for v in values)
        if ctype == "date":
            ts = parse_time(value)
            return human_duration((now - ts).total_seconds()) if ts else value
        if isinstance(value, dict | list):
            return json.dumps(value, separators=(",", ":"))
        return value

    return cell


def crd_columns(rtype: ResourceType) -> list[Column]:
    """Name plus a CRD version's additionalPrinterColumns (Name and Age when it has none)."""
    if not rtype.printer_columns:
        return [_NAME, _CRD_AGE]
    columns: list[Column] = [_NAME]
    for col in rtype.printer_columns:
        if not isinstance(col, dict) or not col.get("name") or not col.get("jsonPath"):
            continue
        ctype = str(col.get("type") or "string")
        columns.append(
            (
                str(col["name"]),
                ctype,
                str(col.get("format") or ""),
                int(col.get("priority") or 0),
                _printer_cell(str(col["jsonPath"]), ctype),
            )
        )
    return columns


def _columns(rtype: ResourceType) -> list[Column]:
    if rtype.crd:
        return crd_columns(rtype)
    return COLUMNS.get(rtype.api_key, [_NAME, _AGE])


def build_table(
    rtype: ResourceType,
    objects: list[Obj],
    *,
    now: datetime.datetime,
    table_version: str,
    include_object: str,
    list_meta: Obj,
    with_headers: bool = True,
) -> Obj:
    """A ``meta.k8s.io`` Table of ``objects`` (already carrying apiVersion/kind)."""
    columns = _columns(rtype)
    descriptions = {
        str(c.get("name")): str(c.get("description") or "") for c in rtype.printer_columns if isinstance(c, dict)
    }
    table: Obj = {"kind": "Table", "apiVersion": f"meta.k8s.io/{table_version}", "metadata": list_meta}
    if with_headers:
        table["columnDefinitions"] = [
            {
                "name": n,
                "type": t,
                "format": f,
                "description": descriptions.get(n) or _DESCRIPTIONS.get(n, n),
                "priority": p,
            }
            for n, t, f, p, _ in columns
        ]
    rows: list[Obj] = []
    for obj in objects:
        row: Obj = {"cells": [fn(obj, now) for _, _, _, _, fn in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    table["rows"] = rows
    return table


def wants_table(accept: str) -> str | None:
    """The Table version (``v1``/``v1beta1``) the Accept header asks for, or None."""
    for part in accept.split(","):
        params = {}
        for item in part.split(";")[1:]:
            if "=" in item:
                k, v = item.split("=", 1)
                params[k.strip()] = v.strip()
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return params.get("v", "v1")
    return None
