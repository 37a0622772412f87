"""Errors that name what they mean: which VM, in which namespace, which node — and what was probably meant.

The seeds' wording: "VM '<vm>' does not exist in namespace '<ns>'", "Namespace '<ns>' does not
exist", "Target node '<node>' does not exist". A typo gets the close matches; a VM that lives in
another namespace is found there and the hint says how to name it.
"""

import difflib
from collections.abc import Iterable, Sequence

from vm_rebalance.errors import ClusterForbiddenError, ConfigError, ResourceNotFoundError
from vm_rebalance.kube.resources import NAMESPACES
from vm_rebalance.model import ClusterState
from vm_rebalance.service.session import Session


def _close(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, sorted(set(candidates)), n=n, cutoff=0.6)


def missing_vm(state: ClusterState, namespace: str, name: str) -> ConfigError:
    """The error for a VM that does not exist, with where it does exist or what is close."""
    elsewhere = sorted(v.namespace for v in state.vms if v.name == name)
    if elsewhere:
        where = ", ".join(repr(ns) for ns in elsewhere)
        hint = f"it exists in namespace {where}: use -n {elsewhere[0]} or {elsewhere[0]}/{name}"
    else:
        close = _close(name, (v.name for v in state.vms if v.namespace == namespace))
        close = close or [
            f"{v.namespace}/{v.name}" for v in state.vms if v.name in _close(name, (x.name for x in state.vms))
        ]
        hint = f"did you mean {', '.join(close)}?" if close else "list VMs with: vm-rebalance inventory"
    return ConfigError(f"VM '{name}' does not exist in namespace '{namespace}'", hint=hint)


def missing_node(state: ClusterState, name: str, *, role: str = "node") -> ConfigError:
    """The error for a node that does not exist ("Target node 'x' does not exist"), with close names."""
    close = _close(name, (n.name for n in state.nodes))
    hint = f"did you mean {', '.join(close)}?" if close else "list nodes with: vm-rebalance inventory"
    label = "Target node" if role == "target" else "node"
    return ConfigError(f"{label} '{name}' does not exist", hint=hint)


def require_namespaces(session: Session, namespaces: Sequence[str]) -> None:
    """Refuse namespaces that do not exist (those holding no VM are asked of the API server).

    Raises:
        ConfigError: "Namespace 'x' does not exist", with close names.
    """
    known = {v.namespace for v in session.state.vms}
    for ns in dict.fromkeys(namespaces):
        if ns in known:
            continue
        try:
            session.client.get(NAMESPACES, ns)
        except ResourceNotFoundError:
            close = _close(ns, known)
            hint = f"did you mean {', '.join(close)}?" if close else "list namespaces with: kubectl get namespaces"
            raise ConfigError(f"Namespace '{ns}' does not exist", hint=hint) from None
        except ClusterForbiddenError:
            continue  # not allowed to read namespaces: the VM lookups will say what is missing


def require_vms(state: ClusterState, refs: Sequence[tuple[str, str]]) -> None:
    """Refuse, naming them, VMs that do not exist (nothing is changed).

    Raises:
        ConfigError: the first missing VM with its hint; several are listed in the message.
    """
    missing = [(ns, name) for ns, name in refs if state.vm(ns, name) is None]
    if not missing:
        return
    first = missing_vm(state, *missing[0])
    if len(missing) == 1:
        raise ConfigError(f"{first}; nothing was changed", hint=first.hint)
    listed = "; ".join(f"VM '{name}' does not exist in namespace '{ns}'" for ns, name in missing)
    raise ConfigError(f"{listed}; nothing was changed", hint=first.hint)
