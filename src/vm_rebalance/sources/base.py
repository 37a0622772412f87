"""The interface every cluster source offers (the usage overlay is a port of its own: sources/usage.py)."""

from typing import Any, Protocol

from vm_rebalance.model import ClusterState


class ClusterSource(Protocol):
    """Something that can produce the cluster's state (and the raw objects behind it)."""

    def raw_objects(self) -> list[dict[str, Any]]:
        """The API objects the state is built from, as the API returns them (what a snapshot keeps)."""
        ...

    def read(self) -> ClusterState:
        """The cluster's state now."""
        ...
