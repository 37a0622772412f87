"""Translation of HTTP and transport failures into vm_rebalance errors."""

import json
import socket

import pytest
import urllib3

from vm_rebalance.errors import (
    ClusterError,
    ClusterForbiddenError,
    ClusterUnreachableError,
    ResourceNotFoundError,
)
from vm_rebalance.kube.errors import (
    MAX_MESSAGE,
    ApiRejectedError,
    Rejection,
    error_for_status,
    error_for_transport,
    status_message,
)

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
        pytest.param(409, ApiRejectedError, "conflict on virtualmachines.kubevirt.io 'db'", id="409"),
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
        pytest.param(socket.gaierror(-2, "Name or service not known"), "could not be resolved", id="dns"),
        pytest.param(
            urllib3.exceptions.MaxRetryError(
                None,  # type: ignore[arg-type]
                "/api",
                urllib3.exceptions.NameResolutionError("api.example", None, socket.gaierror(-2, "x")),  # type: ignore[arg-type]
            ),
            "could not be resolved",
            id="dns-wrapped",
        ),
        pytest.param(TimeoutError("timed out"), "timed out", id="socket-timeout"),
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


def _status(code: int, message: str, reason: str = "") -> dict[str, object]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


_WEBHOOK = (
    'virtualmachineinstancemigrations.kubevirt.io "vmr-feedfaceca-1-1" is forbidden: admission webhook '
    '"migration-create-validator.kubevirt.io" denied the request: '
)


@pytest.mark.parametrize(
    ("code", "reason", "message", "kind", "cause"),
    [
        # kubevirt-api.md Appendix A.1: optimistic lock
        pytest.param(
            409,
            "Conflict",
            'Operation cannot be fulfilled on virtualmachines.kubevirt.io "vm1": the object has been modified; '
            "please apply your changes to the latest version and try again",
            Rejection.OPTIMISTIC_LOCK,
            None,
            id="optimistic-lock",
        ),
        # a failed JSON-patch test operation (vm-rebalance's resourceVersion guard)
        pytest.param(
            422,
            "Invalid",
            "testing value /metadata/resourceVersion failed: test failed",
            Rejection.GUARD_FAILED,
            None,
            id="guard-422",
        ),
        pytest.param(
            409, "Conflict", "jsonpatch test operation does not apply", Rejection.GUARD_FAILED, None, id="guard"
        ),
        # Appendix A.4 and §5: the lifecycle subresources
        pytest.param(
            409,
            "Conflict",
            'Operation cannot be fulfilled on virtualmachine.kubevirt.io "vm1": VM is already running',
            Rejection.ALREADY_RUNNING,
            None,
            id="already-running",
        ),
        pytest.param(
            409,
            "Conflict",
            'Operation cannot be fulfilled on virtualmachine.kubevirt.io "vm1": VM is not running',
            Rejection.NOT_RUNNING,
            None,
            id="not-running",
        ),
        pytest.param(
            409, "Conflict", "Always does not support manual start requests", Rejection.RUN_STRATEGY, None, id="always"
        ),
        pytest.param(
            409,
            "Conflict",
            "RunStategy Halted does not support manual restart requests",
            Rejection.RUN_STRATEGY,
            None,
            id="halted-restart",
        ),
        pytest.param(
            409,
            "Conflict",
            "Halted only supports manual stop requests with a shorter graceperiod",
            Rejection.RUN_STRATEGY,
            None,
            id="halted-stop",
        ),
        pytest.param(
            409,
            "Conflict",
            "unable to complete request: stop/start already underway",
            Rejection.LIFECYCLE_UNDERWAY,
            None,
            id="underway",
        ),
        pytest.param(
            409,
            "Conflict",
            'Apply failed with 1 conflict: conflict with "kubernetes-mcp-server" using kubevirt.io/v1: '
            ".spec.runStrategy",
            Rejection.APPLY_CONFLICT,
            None,
            id="ssa",
        ),
        pytest.param(
            409,
            "AlreadyExists",
            'virtualmachines.kubevirt.io "vm1" already exists',
            Rejection.ALREADY_EXISTS,
            None,
            id="exists",
        ),
        pytest.param(409, "Conflict", "something else", Rejection.CONFLICT, None, id="other-409"),
        # §3.5 / Appendix A.5: the migration admission webhook, as the current apiserver wraps it
        pytest.param(
            400,
            "Forbidden",
            _WEBHOOK + "in-flight migration detected. Active migration job (6f1c) is currently already in "
            "progress for VMI vm1.",
            Rejection.MIGRATION_IN_FLIGHT,
            None,
            id="in-flight",
        ),
        pytest.param(
            400,
            "Forbidden",
            _WEBHOOK + "Cannot migrate VMI, Reason: DisksNotLiveMigratable, Message: cannot migrate VMI: PVC "
            "rootdisk is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany "
            "access mode)",
            Rejection.NOT_MIGRATABLE,
            "DisksNotLiveMigratable",
            id="not-migratable",
        ),
        pytest.param(
            400, "Forbidden", _WEBHOOK + 'the VMI "ns/vm1" does not exist', Rejection.VMI_NOT_FOUND, None, id="no-vmi"
        ),
        pytest.param(
            400, "Forbidden", _WEBHOOK + "Cannot migrate VMI in finalized state.", Rejection.VMI_FINAL, None, id="final"
        ),
        # older apiservers: no "<resource> is forbidden" prefix, the webhook's own (empty) reason kept
        pytest.param(
            400,
            "",
            'admission webhook "migration-create-validator.kubevirt.io" denied the request: in-flight migration '
            "detected. Active migration job (x) is currently already in progress for VMI vm1.",
            Rejection.MIGRATION_IN_FLIGHT,
            None,
            id="in-flight-old-apiserver",
        ),
        # virt-api's migrate subresource wraps the webhook's 400 into a 500
        pytest.param(
            500,
            "InternalError",
            "Internal error occurred: " + _WEBHOOK + "in-flight migration detected. Active migration job (x)",
            Rejection.MIGRATION_IN_FLIGHT,
            None,
            id="wrapped-500",
        ),
        pytest.param(
            400,
            "Forbidden",
            'virtualmachines.kubevirt.io "vm1" is forbidden: admission webhook "quota.example.com" denied the '
            "request: over quota",
            Rejection.WEBHOOK_DENIED,
            None,
            id="other-webhook",
        ),
        pytest.param(
            400,
            "BadRequest",
            "For force restart, only gracePeriod=0 is supported",
            Rejection.BAD_REQUEST,
            None,
            id="400",
        ),
        pytest.param(
            422,
            "Invalid",
            'VirtualMachine.kubevirt.io "vm1" is invalid: spec.runStrategy: Invalid value',
            Rejection.INVALID,
            None,
            id="invalid",
        ),
    ],
)
def test_kubevirt_refusals_are_classified_once(
    code: int, reason: str, message: str, kind: Rejection, cause: str | None
) -> None:
    error = error_for_status(code, _status(code, message, reason), verb="create", resource="x.kubevirt.io", name="n")
    assert isinstance(error, ApiRejectedError) and isinstance(error, ClusterError)
    assert error.kind is kind and error.cause == cause and error.status == code
    assert "denied the request" not in error.detail  # the webhook's wrapping is removed from the detail
    assert error.exit_code == 3


def test_a_plain_server_error_is_not_a_refusal() -> None:
    error = error_for_status(500, _status(500, "Internal error occurred: etcd timeout"), verb="get", resource="pods")
    assert type(error) is ClusterError


def test_a_long_webhook_denial_is_classified_on_the_whole_message_and_shown_cut() -> None:
    message = _WEBHOOK + "x" * 300 + " in-flight migration detected"
    error = error_for_status(400, _status(400, message, "Forbidden"), verb="create", resource="m")
    assert isinstance(error, ApiRejectedError) and error.kind is Rejection.MIGRATION_IN_FLIGHT
    assert len(error.detail) <= MAX_MESSAGE and len(str(error)) < 400


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("https://admin:S3cretPassw0rd@127.0.0.1:1", "https://127.0.0.1:1", id="user-info"),
        pytest.param("https://token@api.example.com:6443/", "https://api.example.com:6443", id="user-only"),
        pytest.param(
            "https://api.example.com/k8s/clusters/c-1?token=abc#x",
            "https://api.example.com/k8s/clusters/c-1",
            id="query",
        ),
        pytest.param("https://u:p@[::1]:6443", "https://[::1]:6443", id="ipv6"),
        pytest.param("not a url", "<the kubeconfig's server>", id="garbage"),
        pytest.param("https://u:p@host:99999", "<the kubeconfig's server>", id="bad-port"),
    ],
)
def test_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    from vm_rebalance.kube.errors import redact_url

    assert redact_url(url) == shown
    assert "S3cret" not in str(error_for_transport(ConnectionRefusedError(), server=url))
