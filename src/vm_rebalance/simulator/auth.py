"""Bearer-token authentication and a small RBAC-like policy for the simulated API server.

Policy file (YAML)::

    kubeconfigUser: rebalancer        # the user the written kubeconfig authenticates as (default: admin)
    users:
      - name: rebalancer
        token: optional-fixed-token   # default: a random token generated at start
        rules:
          - verbs: [get, list, watch]
            apiGroups: [""]           # "" = core, "*" = any
            resources: [nodes, pods]  # "*" = any; subresources as "virtualmachines/migrate"
            namespaces: [prod]        # optional; absent = every namespace and cluster scope

Users not listed are unrestricted only if they are ``admin`` (like ``system:masters``); anyone else
listed nowhere is denied everything. Without a policy every authenticated user may do anything.
"""

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ADMIN_USER = "admin"


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
        policy = cls(kubeconfig_user=str(data.get("kubeconfigUser") or ADMIN_USER))
        for u in data.get("users") or []:
            if not isinstance(u, dict) or not u.get("name"):
                raise ValueError("policy: every user needs a name")
            name = str(u["name"])
            if u.get("token"):
                policy.tokens[name] = str(u["token"])
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
        return sorted({ADMIN_USER, self.kubeconfig_user, *self.rules})


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
