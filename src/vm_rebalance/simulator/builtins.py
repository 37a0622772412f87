"""kube-apiserver's part of a write for the built-in kinds a deployment applies: defaulting, the checks
of ``pkg/apis/*/validation`` that catch real manifest mistakes (a 422 ``Invalid`` with kube-apiserver's
field paths and wording), allocated values (Service cluster IPs and node ports) and status reset on
create. Kinds: Namespaces, Services, Secrets, Deployments, and the RBAC kinds.

Only the commonly hit checks are made; anything not listed here is stored as sent.
"""

import base64
import binascii
import ipaddress
from collections.abc import Callable
from typing import Any

from . import status
from .status import ApiError
from .store import Store, copy_obj

Obj = dict[str, Any]
Cause = dict[str, str]

NAMESPACES = ("", "namespaces")
SERVICES = ("", "services")
SECRETS = ("", "secrets")
DEPLOYMENTS = ("apps", "deployments")
RBAC_GROUP = "rbac.authorization.k8s.io"
CLUSTER_ROLES = (RBAC_GROUP, "clusterroles")
ROLES = (RBAC_GROUP, "roles")
CLUSTER_ROLE_BINDINGS = (RBAC_GROUP, "clusterrolebindings")
ROLE_BINDINGS = (RBAC_GROUP, "rolebindings")

#: The Service CIDR's first addresses: 10.96.0.1 is the ``kubernetes`` Service, 10.96.0.10 cluster DNS.
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORTS = range(30000, 32768)
SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def go_value(value: Any) -> str:
    """A value as Go's ``%#v`` shows it in a field error (strings quoted, string maps and slices typed)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{go_value(k)}:{go_value(v)}" for k, v in sorted(value.items()))
        return f"map[string]string{{{inner}}}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_value(v) for v in value) + "}"
    if value is None:
        return "null"
    return str(value)


def required(field: str, detail: str = "") -> Cause:
    return {
        "reason": "FieldValueRequired",
        "message": f"Required value: {detail}" if detail else "Required value",
        "field": field,
    }


def invalid(field: str, value: Any, detail: str) -> Cause:
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {go_value(value)}: {detail}", "field": field}


def unsupported(field: str, value: Any, supported: tuple[str, ...]) -> Cause:
    choices = ", ".join(go_value(s) for s in supported)
    return {
        "reason": "FieldValueNotSupported",
        "message": f"Unsupported value: {go_value(value)}: supported values: {choices}",
        "field": field,
    }


#: kube-apiserver's limit on the total size of an object's annotations (keys and values).
ANNOTATIONS_LIMIT_BYTES = 262144


def metadata_problems(obj: Obj) -> list[Cause]:
    """``ValidateObjectMeta``'s annotation size check (what a large CRD applied client-side runs into:
    kubectl's last-applied-configuration annotation copies the whole object)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, dict):
        return []
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > ANNOTATIONS_LIMIT_BYTES:
        return [
            {
                "reason": "FieldValueTooLong",
                "message": f"Too long: must have at most {ANNOTATIONS_LIMIT_BYTES} bytes",
                "field": "metadata.annotations",
            }
        ]
    return []


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


class BuiltinWrites:
    """Defaults, validates and allocates for the built-in kinds; the API layer calls :meth:`prepare`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._handlers: dict[tuple[str, str], Callable[[Obj, Obj | None], list[Cause]]] = {
            NAMESPACES: self._namespace,
            SERVICES: self._service,
            SECRETS: self._secret,
            DEPLOYMENTS: self._deployment,
            CLUSTER_ROLES: lambda o, old: _role(o, namespaced=False),
            ROLES: lambda o, old: _role(o, namespaced=True),
            CLUSTER_ROLE_BINDINGS: lambda o, old: _binding(o, old, cluster=True),
            ROLE_BINDINGS: lambda o, old: _binding(o, old, cluster=False),
        }

    def handles(self, key: tuple[str, str]) -> bool:
        return key in self._handlers

    def prepare(self, key: tuple[str, str], kind: str, group: str, obj: Obj, old: Obj | None, sub: str) -> Obj:
        """The object to store for a create (``old`` None) or update of a built-in kind.

        Raises:
            ApiError: 400 for undecodable data, 422 with kube-apiserver's causes for invalid objects.
        """
        handler = self._handlers.get(key)
        if handler is None or sub:
            return obj
        obj = copy_obj(obj)
        causes = handler(obj, old)
        if causes:
            raise status.invalid(kind, group, str(_meta(obj).get("name") or ""), causes)
        return obj

    # -- core/v1 ---------------------------------------------------------------------------------------------

    def _namespace(self, obj: Obj, old: Obj | None) -> list[Cause]:
        meta = _meta(obj)
        name = str(meta.get("name") or "")
        meta.setdefault("labels", {})
        if isinstance(meta["labels"], dict):
            meta["labels"]["kubernetes.io/metadata.name"] = name
        if old is None:
            spec: Obj = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
            spec.setdefault("finalizers", ["kubernetes"])
            obj["spec"] = spec
            obj["status"] = {"phase": "Active"}
        else:
            obj["spec"] = old.get("spec") or {}  # spec.finalizers change only through /finalize
        return []

    def _service(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = {}
            obj["spec"] = spec
        causes: list[Cause] = []
        stype = spec.setdefault("type", "ClusterIP")
        if stype not in SERVICE_TYPES:
            return [unsupported("spec.type", stype, SERVICE_TYPES)]
        old_spec = (old or {}).get("spec") or {}
        if old is not None:
            for field in ("clusterIP", "clusterIPs"):
                if field not in spec and field in old_spec:
                    spec[field] = copy_obj(old_spec[field])  # kube-apiserver's patchAllocatedValues
            if old_spec.get("clusterIP") and spec.get("clusterIP") != old_spec.get("clusterIP"):
                causes.append(invalid("spec.clusterIP", spec.get("clusterIP"), "field is immutable"))
        headless = spec.get("clusterIP") == "None"
        ports = spec.get("ports")
        if ports is None:
            ports = []
        if not isinstance(ports, list):
            return [invalid("spec.ports", ports, "must be a list")]
        if not ports and not headless and stype != "ExternalName":
            causes.append(required("spec.ports"))
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or []}
        taken_node_ports: set[int] | None = None
        for i, port in enumerate(ports):
            where = f"spec.ports[{i}]"
            if not isinstance(port, dict):
                causes.append(invalid(where, port, "must be an object"))
                continue
            port.setdefault("protocol", "TCP")
            number = port.get("port")
            if not isinstance(number, int) or not 1 <= number <= 65535:
                causes.append(invalid(f"{where}.port", number, "must be between 1 and 65535, inclusive"))
            if len(ports) > 1 and not port.get("name"):
                causes.append(required(f"{where}.name"))
            port.setdefault("targetPort", number)
            if stype in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                previous = old_ports.get((number, port["protocol"])) or {}
                if previous.get("nodePort"):
                    port["nodePort"] = previous["nodePort"]
                else:
                    if taken_node_ports is None:
                        taken_node_ports = self._node_ports()
                    port["nodePort"] = next(p for p in NODE_PORTS if p not in taken_node_ports)
                    taken_node_ports.add(port["nodePort"])
        if causes:
            return causes
        spec.setdefault("sessionAffinity", "None")
        if stype != "ExternalName":
            if not spec.get("clusterIP"):
                spec["clusterIP"] = self._free_cluster_ip()
            if spec["clusterIP"] != "None":
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            else:
                spec.setdefault("clusterIPs", ["None"])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if old is None:
            obj["status"] = {"loadBalancer": {}}
        return []

    def _service_specs(self) -> list[Obj]:
        return [s.get("spec") or {} for s in self.store.iter_objects(SERVICES)]

    def _free_cluster_ip(self) -> str:
        taken = {str(s.get("clusterIP")) for s in self._service_specs()}
        for offset in range(11, SERVICE_CIDR.num_addresses - 1):
            candidate = str(SERVICE_CIDR.network_address + offset)
            if candidate not in taken:
                return candidate
        raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: range is full")

    def _node_ports(self) -> set[int]:
        return {int(p["nodePort"]) for s in self._service_specs() for p in s.get("ports") or [] if p.get("nodePort")}

    def _secret(self, obj: Obj, old: Obj | None) -> list[Cause]:
        obj.setdefault("type", "Opaque")
        data = obj.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise status.bad_request('Secret in version "v1" cannot be handled as a Secret: data must be an object')
        for key, value in data.items():
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                # kube-apiserver fails while decoding; like it, name the key but never the value
                raise status.bad_request(
                    f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in key "{key}"'
                ) from None
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        if data:
            obj["data"] = data
        if old is not None and old.get("type", "Opaque") != obj["type"]:
            return [invalid("type", obj["type"], "field is immutable")]
        return []

    # -- apps/v1 ---------------------------------------------------------------------------------------------

    def _deployment(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = {}
            obj["spec"] = spec
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", "25%")
                    rolling.setdefault("maxSurge", "25%")
        causes: list[Cause] = []
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
        selector = spec.get("selector")
        template: Obj = spec["template"] if isinstance(spec.get("template"), dict) else {}
        labels = ((template.get("metadata") or {}).get("labels")) or {}
        if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(required("spec.selector"))
        elif not _selector_matches(selector, labels):
            causes.append(
                invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
            )
        if old is not None and selector != ((old.get("spec") or {}).get("selector")):
            causes.append(invalid("spec.selector", selector, "field is immutable"))
        pod_spec = template.get("spec")
        if not isinstance(pod_spec, dict):
            pod_spec = {}
            template["spec"] = pod_spec
        causes += _pod_spec(pod_spec, "spec.template.spec")
        if template is not spec.get("template"):
            spec["template"] = template
        if old is None:
            obj["status"] = {}
        return causes


def _selector_matches(selector: Obj, labels: dict[str, Any]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and present and labels.get(key) in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _pod_spec(spec: Obj, where: str) -> list[Cause]:
    """PodSpec defaults (``SetDefaults_PodSpec`` / ``_Container``) and the checks that catch typos."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [required(f"{where}.containers")]
    seen: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field) or []):
            at = f"{where}.{field}[{i}]"
            if not isinstance(c, dict):
                causes.append(invalid(at, c, "must be an object"))
                continue
            name = c.get("name")
            if not name:
                causes.append(required(f"{at}.name"))
            elif name in seen:
                causes.append(
                    {
                        "reason": "FieldValueDuplicate",
                        "message": f"Duplicate value: {go_value(name)}",
                        "field": f"{at}.name",
                    }
                )
            seen.add(str(name or ""))
            image = c.get("image")
            if not image:
                causes.append(required(f"{at}.image"))
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            if "imagePullPolicy" not in c:
                tagged = (isinstance(image, str) and ":" in image.rsplit("/", 1)[-1]) or "@" in str(image)
                latest = isinstance(image, str) and image.rsplit("/", 1)[-1].endswith(":latest")
                c["imagePullPolicy"] = "IfNotPresent" if tagged and not latest else "Always"
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
    return causes


# -- rbac.authorization.k8s.io/v1 ---------------------------------------------------------------------------


def _role(obj: Obj, *, namespaced: bool) -> list[Cause]:
    """``ValidatePolicyRule`` for every rule of a Role or ClusterRole."""
    causes: list[Cause] = []
    rules = obj.get("rules")
    if rules is None and not namespaced and obj.get("aggregationRule"):
        return []
    for i, rule in enumerate(rules or []):
        at = f"rules[{i}]"
        if not isinstance(rule, dict):
            causes.append(invalid(at, rule, "must be an object"))
            continue
        if not rule.get("verbs"):
            causes.append(required(f"{at}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                causes.append(
                    invalid(f"{at}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs")
                )
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                causes.append(
                    invalid(
                        f"{at}.nonResourceURLs",
                        urls,
                        "rules cannot apply to both regular resources and non-resource URLs",
                    )
                )
            continue
        if not rule.get("apiGroups"):
            causes.append(required(f"{at}.apiGroups", "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            causes.append(required(f"{at}.resources", "resource rules must supply at least one resource"))
    return causes


def _role_ref_text(ref: Obj) -> str:
    return (
        f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
        f'Name:"{ref.get("name", "")}"}}'
    )


def _binding(obj: Obj, old: Obj | None, *, cluster: bool) -> list[Cause]:
    """``ValidateRoleBinding`` / ``ValidateClusterRoleBinding``: the role reference and the subjects."""
    causes: list[Cause] = []
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        ref = {}
    if ref.get("apiGroup") != RBAC_GROUP:
        causes.append(unsupported("roleRef.apiGroup", ref.get("apiGroup") or "", (RBAC_GROUP,)))
    kinds = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
    if ref.get("kind") not in kinds:
        causes.append(unsupported("roleRef.kind", ref.get("kind") or "", kinds))
    if not ref.get("name"):
        causes.append(required("roleRef.name"))
    if old is not None:
        old_ref = old.get("roleRef") or {}
        if old_ref != ref:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {_role_ref_text(ref)}: cannot change roleRef",
                    "field": "roleRef",
                }
            )
    for i, subject in enumerate(obj.get("subjects") or []):
        at = f"subjects[{i}]"
        if not isinstance(subject, dict):
            causes.append(invalid(at, subject, "must be an object"))
            continue
        kind = subject.get("kind")
        if not subject.get("apiGroup") and kind in ("User", "Group"):
            subject["apiGroup"] = RBAC_GROUP  # SetDefaults_Subject
        if not subject.get("name"):
            causes.append(required(f"{at}.name"))
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                causes.append(unsupported(f"{at}.apiGroup", subject["apiGroup"], ("",)))
            if cluster and not subject.get("namespace"):
                causes.append(required(f"{at}.namespace"))
        elif kind in ("User", "Group"):
            if subject.get("apiGroup") != RBAC_GROUP:
                causes.append(unsupported(f"{at}.apiGroup", subject.get("apiGroup") or "", (RBAC_GROUP,)))
        else:
            causes.append(unsupported(f"{at}.kind", kind or "", ("ServiceAccount", "User", "Group")))
    return causes
