"""Translation of HTTP and transport failures into vm_rebalance errors."""

import json

import pytest
import urllib3

from vm_rebalance.errors import (
    ClusterError,
    ClusterForbiddenError,
    ClusterUnreachableError,
    ResourceNotFoundError,
)
from vm_rebalance.kube.errors import MAX_MESSAGE, error_for_status, error_for_transport, status_message

STATUS = {
    "kind": "Status",
    "message": 'pods is forbidden: User "bob" cannot list resource "pods"',
    "reason": "Forbidden",
}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(STATUS, STATUS["message"], id="dict"),
        pytest.param(json.dumps(STATUS), STATUS["message"], id="json-text"),
        pytest.param(json.dumps(STATUS).encode(), STATUS["message"], id="json-bytes"),
        pytest.param({"reason": "NotFound"}, "NotFound", id="reason-only"),
        pytest.param(b"<html>bad gateway</html>  ", "<html>bad gateway</html>", id="not-json"),
        pytest.param(b"\xff\xfe", "\ufffd\ufffd", id="undecodable"),
        pytest.param(None, "", id="none"),
        pytest.param("x" * 1000, "x" * MAX_MESSAGE, id="cut"),
    ],
)
def test_status_message(body: object, message: str) -> None:
    assert status_message(body) == message


@pytest.mark.parametrize(
    ("status", "cls", "words"),
    [
        pytest.param(401, ClusterForbiddenError, "rejected the credentials (401 Unauthorized)", id="401"),
        pytest.param(
            403,
            ClusterForbiddenError,
            "forbidden: cannot list virtualmachines.kubevirt.io in namespace prod",
            id="403",
        ),
        pytest.param(
            404,
            ResourceNotFoundError,
            "virtualmachines.kubevirt.io 'db' in namespace prod not found",
            id="404",
        ),
        pytest.param(409, ClusterError, "conflict on virtualmachines.kubevirt.io 'db'", id="409"),
        pytest.param(429, ClusterError, "throttling", id="429"),
        pytest.param(
            500,
            ClusterError,
            "list virtualmachines.kubevirt.io 'db' in namespace prod failed with HTTP 500",
            id="500",
        ),
    ],
)
def test_error_for_status(status: int, cls: type[ClusterError], words: str) -> None:
    error = error_for_status(
        status, STATUS, verb="list", resource="virtualmachines.kubevirt.io", namespace="prod", name="db"
    )
    assert type(error) is cls
    assert words in str(error)
    assert error.status == status
    assert error.exit_code == 3


def test_403_names_verb_and_resource_in_message_and_hint() -> None:
    error = error_for_status(403, None, verb="list", resource="nodes")
    assert str(error) == "forbidden: cannot list nodes at cluster scope"
    assert error.hint == "grant 'list' on 'nodes' (see the RBAC section of the README)"


@pytest.mark.parametrize(
    ("exc", "why"),
    [
        pytest.param(
            urllib3.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
            "TLS verification failed",
            id="tls",
        ),
        pytest.param(
            urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out."),  # type: ignore[arg-type]
            "timed out",
            id="timeout",
        ),
        pytest.param(ConnectionRefusedError(111, "Connection refused"), "refused", id="refused"),
        pytest.param(
            urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection"),  # type: ignore[arg-type]
            "refused",
            id="new-connection",
        ),
        pytest.param(OSError("[Errno -2] Name or service not known"), "could not be resolved", id="dns"),
        pytest.param(OSError("something odd at /home/alice/.kube/config"), "could not be sent", id="other"),
    ],
)
def test_error_for_transport(exc: BaseException, why: str) -> None:
    error = error_for_transport(exc, server="https://api.example:6443")
    assert isinstance(error, ClusterUnreachableError)
    assert str(error).startswith("cannot reach the Kubernetes API server at https://api.example:6443: ")
    assert why in str(error)
    assert ".kube" not in str(error)
    assert error.hint and error.exit_code == 3
