"""Authorization from the cluster's own RBAC objects, as kube-apiserver's RBAC authorizer does it.

Roles, ClusterRoles, RoleBindings and ClusterRoleBindings are ordinary stored objects; when the
RBAC mode is on (policy file ``rbac: cluster`` or ``SimulatorServer(rbac=True)``) every request is
decided by :class:`RbacAuthorizer` from what is stored at that moment, with the rules of
``plugin/pkg/auth/authorizer/rbac`` (``RuleAllows``, ``appliesTo``): verbs, API groups, resources
with subresources (``virtualmachines/migrate``, ``*/status``), resourceNames, nonResourceURLs (with a
trailing ``*``), ClusterRoleBindings everywhere, RoleBindings (to a Role or a ClusterRole) in their
namespace only, subjects of kind User, Group and ServiceAccount (namespace defaulted to the
binding's). Aggregated ClusterRoles (``aggregationRule``) are not aggregated.

The bootstrap objects a real kube-apiserver creates and that a least-privilege identity relies on
are created with every cluster (:func:`bootstrap_objects`): ``cluster-admin`` (bound to
``system:masters``), ``system:discovery`` and ``system:basic-user`` (bound to
``system:authenticated``), ``system:public-info-viewer``; and KubeVirt's ``kubevirt.io:migrate``.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .auth import Attributes, UserInfo
from .store import Store

Obj = dict[str, Any]

GROUP = "rbac.authorization.k8s.io"
CLUSTER_ROLES = (GROUP, "clusterroles")
CLUSTER_ROLE_BINDINGS = (GROUP, "clusterrolebindings")
ROLES = (GROUP, "roles")
ROLE_BINDINGS = (GROUP, "rolebindings")
RBAC_KEYS = frozenset({CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS, ROLES, ROLE_BINDINGS})

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
SYSTEM_MASTERS = "system:masters"


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    """The groups kube-apiserver gives a ServiceAccount's token (plus ``system:authenticated``)."""
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", ALL_AUTHENTICATED)


def split_service_account(username: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a ``system:serviceaccount:NS:NAME`` user name, else None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    rest = username[len(SERVICE_ACCOUNT_PREFIX) :]
    namespace, sep, name = rest.partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


# -- rule matching (rbac/v1 helpers) -----------------------------------------------------------------------


def _strings(rule: Obj, field: str) -> list[str]:
    value = rule.get(field) or []
    return [str(v) for v in value] if isinstance(value, list) else []


def rule_allows(attrs: Attributes, rule: Obj) -> bool:
    """``RuleAllows``: does one PolicyRule allow the request?"""
    verbs = _strings(rule, "verbs")
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        for url in _strings(rule, "nonResourceURLs"):
            if url in ("*", attrs.path):
                return True
            if url.endswith("*") and attrs.path.startswith(url.rstrip("*")):
                return True
        return False
    groups = _strings(rule, "apiGroups")
    if "*" not in groups and attrs.group not in groups:
        return False
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    if not any(
        r in ("*", combined) or (attrs.subresource and r == f"*/{attrs.subresource}")
        for r in _strings(rule, "resources")
    ):
        return False
    names = _strings(rule, "resourceNames")
    return not names or attrs.name in names


def _applies(user: UserInfo, subject: Obj, namespace: str) -> bool:
    """``appliesTo`` for one subject (a ServiceAccount's namespace defaults to the binding's)."""
    kind = subject.get("kind")
    name = str(subject.get("name") or "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_namespace = str(subject.get("namespace") or namespace)
        return bool(sa_namespace) and user.name == service_account_username(sa_namespace, name)
    return False


def _describe_subject(subject: Obj, binding_namespace: str) -> str:
    kind = str(subject.get("kind") or "")
    name = str(subject.get("name") or "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


Visitor = Callable[[str, Obj | None, str], bool]


class RbacAuthorizer:
    """Decides requests from the Roles, ClusterRoles and bindings in ``store`` (read at every request)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _role_rules(self, ref: Obj, namespace: str) -> tuple[list[Obj], str]:
        kind = ref.get("kind")
        name = str(ref.get("name") or "")
        if kind == "ClusterRole":
            role = self.store.try_get(CLUSTER_ROLES, None, name, copy=False)
            if role is None:
                return [], f'clusterrole.{GROUP} "{name}" not found'
        elif kind == "Role" and namespace:
            role = self.store.try_get(ROLES, namespace, name, copy=False)
            if role is None:
                return [], f'role.{GROUP} "{name}" not found'
        else:
            return [], f"unsupported role reference kind: {kind!r}"
        rules = role.get("rules") or []
        return [r for r in rules if isinstance(r, dict)], ""

    def visit_rules_for(self, user: UserInfo, namespace: str, visitor: Visitor) -> None:
        """``VisitRulesFor``: every rule that applies to ``user`` in ``namespace`` ("" = cluster scope), with
        its source's description; a missing role is visited as an error. Stops when ``visitor`` says so."""
        with self.store.lock:
            bindings = list(self.store.iter_objects(CLUSTER_ROLE_BINDINGS))
            local = self.store.list(ROLE_BINDINGS, namespace, copy=False)[0] if namespace else []
        for binding in sorted(bindings, key=lambda b: b["metadata"]["name"]):
            subject = next((s for s in binding.get("subjects") or [] if _applies(user, s, "")), None)
            if subject is None:
                continue
            ref = binding.get("roleRef") or {}
            rules, error = self._role_rules(ref, "")
            source = (
                f'ClusterRoleBinding "{binding["metadata"]["name"]}" of {ref.get("kind")} "{ref.get("name")}" '
                f"to {_describe_subject(subject, '')}"
            )
            if error and not visitor(source, None, error):
                return
            for rule in rules:
                if not visitor(source, rule, ""):
                    return
        for binding in local:
            meta = binding["metadata"]
            subject = next((s for s in binding.get("subjects") or [] if _applies(user, s, namespace)), None)
            if subject is None:
                continue
            ref = binding.get("roleRef") or {}
            rules, error = self._role_rules(ref, namespace)
            source = (
                f'RoleBinding "{meta["name"]}/{namespace}" of {ref.get("kind")} "{ref.get("name")}" '
                f"to {_describe_subject(subject, namespace)}"
            )
            if error and not visitor(source, None, error):
                return
            for rule in rules:
                if not visitor(source, rule, ""):
                    return

    def authorize(self, attrs: Attributes) -> Decision:
        """Allowed with ``RBAC: allowed by …``, or not, with the resolution errors as the reason."""
        allowed: list[str] = []
        errors: list[str] = []

        def visit(source: str, rule: Obj | None, error: str) -> bool:
            if rule is not None and rule_allows(attrs, rule):
                allowed.append(f"RBAC: allowed by {source}")
                return False
            if error:
                errors.append(error)
            return True

        self.visit_rules_for(attrs.user, attrs.namespace, visit)
        if allowed:
            return Decision(True, allowed[0])
        if not errors:
            return Decision(False, "")
        joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return Decision(False, f"RBAC: {joined}")

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Obj], list[str]]:
        """Every rule that applies in ``namespace`` and the resolution errors (SelfSubjectRulesReview)."""
        rules: list[Obj] = []
        errors: list[str] = []

        def visit(_: str, rule: Obj | None, error: str) -> bool:
            if rule is not None:
                rules.append(rule)
            if error:
                errors.append(error)
            return True

        self.visit_rules_for(user, namespace, visit)
        return rules, errors


# -- bootstrap policy --------------------------------------------------------------------------------------

_BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def _cluster_role(name: str, rules: list[Obj], labels: dict[str, str] | None = None) -> Obj:
    annotations = dict(_AUTOUPDATE) if labels is None else {}
    meta: Obj = {"name": name, "labels": dict(_BOOTSTRAP_LABELS if labels is None else labels)}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole", "metadata": meta, "rules": rules}


def _group_binding(name: str, *groups: str) -> Obj:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(_BOOTSTRAP_LABELS), "annotations": dict(_AUTOUPDATE)},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups],
    }


def bootstrap_objects() -> Iterator[tuple[tuple[str, str], Obj]]:
    """The ClusterRoles and ClusterRoleBindings every simulated cluster starts with."""
    for role in (*_kubernetes_bootstrap_roles(), _kubevirt_migrate_role()):
        yield CLUSTER_ROLES, role
    yield CLUSTER_ROLE_BINDINGS, _group_binding("cluster-admin", SYSTEM_MASTERS)
    yield CLUSTER_ROLE_BINDINGS, _group_binding("system:discovery", ALL_AUTHENTICATED)
    yield CLUSTER_ROLE_BINDINGS, _group_binding("system:basic-user", ALL_AUTHENTICATED)
    yield CLUSTER_ROLE_BINDINGS, _group_binding("system:public-info-viewer", ALL_AUTHENTICATED, ALL_UNAUTHENTICATED)


def _kubernetes_bootstrap_roles() -> list[Obj]:
    """kube-apiserver's bootstrap ClusterRoles that the simulated API uses: admin, discovery, self reviews."""
    return [
        _cluster_role(
            "cluster-admin",
            [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        ),
        _cluster_role(
            "system:discovery",
            [
                {
                    "nonResourceURLs": [
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ],
                    "verbs": ["get"],
                }
            ],
        ),
        _cluster_role(
            "system:basic-user",
            [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                },
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ],
        ),
        _cluster_role(
            "system:public-info-viewer",
            [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}],
        ),
    ]


def _kubevirt_migrate_role() -> Obj:
    """KubeVirt's ClusterRole for migrating VMs."""
    # KubeVirt >= 1.5 (virt-operator's rbac/cluster.go newMigrateClusterRole)
    return _cluster_role(
        "kubevirt.io:migrate",
        [
            {
                "apiGroups": ["subresources.kubevirt.io"],
                "resources": ["virtualmachines/migrate"],
                "verbs": ["update"],
            },
            {
                "apiGroups": ["kubevirt.io"],
                "resources": ["virtualmachineinstancemigrations"],
                "verbs": ["get", "delete", "create", "update", "patch", "list", "watch", "deletecollection"],
            },
        ],
        labels={"kubevirt.io": ""},
    )
