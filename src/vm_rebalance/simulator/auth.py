"""Bearer-token authentication and the authorization modes of the simulated API server.

Policy file (YAML), rules mode::

    kubeconfigUser: rebalancer        # the user the written kubeconfig authenticates as (default: admin)
    users:
      - name: rebalancer
        token: optional-fixed-token   # default: a random token generated at start
        groups: [ops]                 # optional; every user is also in system:authenticated
        rules:
          - verbs: [get, list, watch]
            apiGroups: [""]           # "" = core, "*" = any
            resources: [nodes, pods]  # "*" = any; subresources as "virtualmachines/migrate"
            namespaces: [prod]        # optional; absent = every namespace and cluster scope

Users not listed are unrestricted only if they are ``admin`` (like ``system:masters``); anyone else
listed nowhere is denied everything. Without a policy every authenticated user may do anything.

Cluster RBAC mode (``rbac: cluster``): users are listed with names, tokens and groups but no rules;
every request is decided by the Roles, ClusterRoles and bindings stored in the cluster (module
``rbac``), ServiceAccount tokens included. ``admin`` is in ``system:masters``.
"""

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ADMIN_USER = "admin"
ALL_AUTHENTICATED = "system:authenticated"
#: Groups whose members may do anything, before any authorizer is asked (kube-apiserver's privileged group).
SUPERUSER_GROUP = "system:masters"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity: user name, groups and (for ServiceAccount tokens) the account's uid."""

    name: str
    groups: tuple[str, ...] = (ALL_AUTHENTICATED,)
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Attributes:
    """What a request asks for, as kube-apiserver's RequestInfo and authorizer attributes describe it."""

    user: UserInfo
    verb: str
    resource_request: bool = True
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    namespaces: frozenset[str] | None = None

    def allows(self, verb: str, group: str, resource: str, subresource: str, namespace: str | None) -> bool:
        if "*" not in self.verbs and verb not in self.verbs:
            return False
        if "*" not in self.api_groups and group not in self.api_groups:
            return False
        full = f"{resource}/{subresource}" if subresource else resource
        if (
            not ({"*", full} & self.resources)
            and not (subresource and f"{resource}/*" in self.resources)
            and not (subresource and f"*/{subresource}" in self.resources)
        ):
            return False
        if self.namespaces is not None:
            return namespace is not None and (namespace in self.namespaces or "*" in self.namespaces)
        return True


@dataclass
class Policy:
    """Users' rules; ``kubeconfig_user`` is the user the server's written kubeconfig uses."""

    rules: dict[str, list[Rule]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # user -> fixed token from the file
    kubeconfig_user: str = ADMIN_USER
    #: Authorize by the cluster's own Roles and bindings instead of ``rules`` (``rbac: cluster``).
    rbac: bool = False
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user -> groups besides system:authenticated
    listed: set[str] = field(default_factory=set)  # users named in the file

    def user_info(self, user: str) -> UserInfo:
        """The identity of a policy (or the admin) user: its groups plus system:authenticated."""
        groups = list(self.groups.get(user, ()))
        if user == ADMIN_USER and SUPERUSER_GROUP not in groups:
            groups.insert(0, SUPERUSER_GROUP)
        if ALL_AUTHENTICATED not in groups:
            groups.append(ALL_AUTHENTICATED)
        return UserInfo(user, tuple(groups))

    def allows(self, user: str, verb: str, group: str, resource: str, subresource: str, namespace: str | None) -> bool:
        if user not in self.rules:
            return user == ADMIN_USER
        return any(r.allows(verb, group, resource, subresource, namespace) for r in self.rules[user])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Policy":
        """Build a policy from its YAML shape (see the module docstring).

        Raises:
            ValueError: malformed policy.
        """
        if not isinstance(data, dict):
            raise ValueError("policy: the document must be a mapping")
        mode = data.get("rbac")
        if mode not in (None, "cluster", "rules"):
            raise ValueError(f"policy: rbac must be 'cluster' or 'rules', not {mode!r}")
        policy = cls(kubeconfig_user=str(data.get("kubeconfigUser") or ADMIN_USER), rbac=mode == "cluster")
        for u in data.get("users") or []:
            if not isinstance(u, dict) or not u.get("name"):
                raise ValueError("policy: every user needs a name")
            name = str(u["name"])
            policy.listed.add(name)
            if u.get("token"):
                policy.tokens[name] = str(u["token"])
            groups = u.get("groups") or []
            if not isinstance(groups, list):
                raise ValueError(f"policy: the groups of user {name!r} must be a list")
            policy.groups[name] = tuple(str(g) for g in groups)
            if policy.rbac:
                if u.get("rules"):
                    raise ValueError(
                        f"policy: user {name!r} has rules, but with 'rbac: cluster' permissions come from the "
                        "cluster's Roles, ClusterRoles and bindings"
                    )
                continue
            rules: list[Rule] = []
            for r in u.get("rules") or []:
                namespaces = r.get("namespaces")
                rules.append(
                    Rule(
                        verbs=frozenset(str(v) for v in r.get("verbs") or []),
                        api_groups=frozenset(str(g) for g in r.get("apiGroups") or [""]),
                        resources=frozenset(str(x) for x in r.get("resources") or []),
                        namespaces=frozenset(str(n) for n in namespaces) if namespaces is not None else None,
                    )
                )
            policy.rules[name] = rules
        return policy

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        """Read a policy YAML file.

        Raises:
            OSError: unreadable file. ValueError: malformed policy.
        """
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(yaml.safe_load(fh) or {})

    def users(self) -> list[str]:
        return sorted({ADMIN_USER, self.kubeconfig_user, *self.rules, *self.listed})


def make_tokens(users: list[str], fixed: dict[str, str] | None = None) -> dict[str, str]:
    """token -> user, with random tokens for users without a fixed one."""
    fixed = fixed or {}
    return {fixed.get(u) or secrets.token_urlsafe(32): u for u in users}


def bearer_user(authorization: str | None, tokens: dict[str, str]) -> str | None:
    """The user for an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    token = token.strip()
    for known, user in tokens.items():
        if secrets.compare_digest(known, token):
            return user
    return None
