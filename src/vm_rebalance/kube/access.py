"""Ask the API server what the current identity may do (SelfSubjectAccessReview), before doing it."""

from collections.abc import Iterable
from dataclasses import dataclass

from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.resources import ApiResource

SELF_SUBJECT_ACCESS_REVIEWS = ApiResource(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False
)


@dataclass(frozen=True, slots=True, order=True)
class Permission:
    """One verb on one resource (and subresource), in a namespace or cluster-wide (None)."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str | None = None

    def __str__(self) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        qualified = f"{what}.{self.group}" if self.group else what
        where = f" in namespace '{self.namespace}'" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {qualified}{where}"


def denied(client: KubeClient, permissions: Iterable[Permission]) -> list[Permission]:
    """The permissions the current identity lacks, asked one review each (sorted, no duplicates).

    Raises:
        ClusterError: the reviews themselves cannot be made (unreachable, API error).
    """
    missing: list[Permission] = []
    for permission in sorted(set(permissions)):
        attributes = {"verb": permission.verb, "group": permission.group, "resource": permission.resource}
        if permission.subresource:
            attributes["subresource"] = permission.subresource
        if permission.namespace:
            attributes["namespace"] = permission.namespace
        review = client.create(
            SELF_SUBJECT_ACCESS_REVIEWS,
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
        )
        if not (review.get("status") or {}).get("allowed"):
            missing.append(permission)
    return missing
