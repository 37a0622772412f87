"""The bodies of the review APIs and of TokenRequest, built from what the authenticator and the
authorizer decided: SelfSubjectAccessReview, SubjectAccessReview, SelfSubjectRulesReview
(``kubectl auth can-i [--list]``), SelfSubjectReview (``kubectl auth whoami``), and the
``serviceaccounts/token`` subresource's TokenRequest (``kubectl create token``). Pure functions.
"""

from typing import Any

from .auth import Attributes, UserInfo

Obj = dict[str, Any]


def attributes_of(spec: Obj, identity: UserInfo) -> Attributes | None:
    """The request an access review asks about (``resourceAttributes`` or ``nonResourceAttributes``)."""
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        return Attributes(
            identity,
            str(resource.get("verb") or ""),
            group=str(resource.get("group") or ""),
            version=str(resource.get("version") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            namespace=str(resource.get("namespace") or ""),
            name=str(resource.get("name") or ""),
        )
    non_resource = spec.get("nonResourceAttributes")
    if isinstance(non_resource, dict):
        return Attributes(
            identity,
            str(non_resource.get("verb") or ""),
            resource_request=False,
            path=str(non_resource.get("path") or ""),
        )
    return None


def subject_of(spec: Obj) -> UserInfo:
    """The identity a SubjectAccessReview asks about (``spec.user``, ``groups``, ``uid``)."""
    groups = spec.get("groups") or []
    return UserInfo(
        str(spec.get("user") or ""),
        tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        uid=str(spec.get("uid") or ""),
    )


def access_review(kind: str, spec: Obj, allowed: bool, reason: str) -> Obj:
    """A (Self)SubjectAccessReview answer."""
    result: Obj = {"allowed": allowed}
    if reason:
        result["reason"] = reason
    return {
        "kind": kind,
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": result,
    }


def _resource_rule(rule: Obj) -> Obj:
    out: Obj = {"verbs": list(rule.get("verbs") or [])}
    for field in ("apiGroups", "resources", "resourceNames"):
        if rule.get(field):
            out[field] = list(rule[field])
    return out


def rules_review(spec: Obj, rules: list[Obj], errors: list[str]) -> Obj:
    """A SelfSubjectRulesReview answer from the PolicyRules that apply in ``spec.namespace``."""
    resource_rules = [_resource_rule(r) for r in rules if r.get("resources")]
    non_resource_rules = [
        {"verbs": list(r.get("verbs") or []), "nonResourceURLs": list(r["nonResourceURLs"])}
        for r in rules
        if r.get("nonResourceURLs")
    ]
    result: Obj = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": bool(errors),
    }
    if errors:
        result["evaluationError"] = "; ".join(errors)
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": result,
    }


#: What an identity that may do anything is told by a SelfSubjectRulesReview (kube-apiserver's
#: privileged-group authorizer answers the same for ``system:masters``).
ALL_RULES = [
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
]


def self_subject_review(identity: UserInfo) -> Obj:
    """``kubectl auth whoami``: the identity the request authenticated as."""
    user: Obj = {"username": identity.name, "groups": list(identity.groups)}
    if identity.uid:
        user["uid"] = identity.uid
    if identity.extra:
        user["extra"] = {k: list(v) for k, v in identity.extra}
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": user},
    }


def token_request(namespace: str, name: str, spec: Obj, token: str, expires_iso: str, created_iso: str) -> Obj:
    """The TokenRequest a ``serviceaccounts/token`` POST answers with."""
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created_iso},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expires_iso},
    }
