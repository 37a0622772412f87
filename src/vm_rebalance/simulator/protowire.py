"""Just enough Kubernetes protobuf decoding to read the review and TokenRequest bodies.

client-go's typed clients (kubernetes-mcp-server's access check, ``kubectl auth can-i [--list]``,
``kubectl auth whoami``, ``kubectl create token``) POST them as ``application/vnd.kubernetes.protobuf``
while accepting JSON back. The envelope is the 4-byte magic ``k8s\\0`` followed by a ``runtime.Unknown``
message whose field 2 holds the object's own bytes. Field numbers are those of k8s.io/api's
``generated.proto`` (authorization/v1, authentication/v1).
"""

from typing import Any

MAGIC = b"k8s\x00"

# authorization/v1 ResourceAttributes field numbers (k8s.io/api/authorization/v1/generated.proto)
_RESOURCE_ATTRIBUTE_FIELDS = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}
_NON_RESOURCE_FIELDS = {1: "path", 2: "verb"}


class ProtobufError(ValueError):
    """Malformed protobuf input."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of one message; varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _strings(data: bytes, names: dict[int, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, value in fields(data):
        if number in names and isinstance(value, bytes):
            out[names[number]] = value.decode("utf-8", "replace")
    return out


def decode_ssar(body: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview (as JSON-shaped dict) from its protobuf encoding.

    Raises:
        ProtobufError: not a Kubernetes protobuf envelope or malformed.
    """
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    raw = next((v for n, v in fields(body[len(MAGIC) :]) if n == 2 and isinstance(v, bytes)), b"")
    spec: dict[str, Any] = {}
    for number, value in fields(raw):
        if number != 2 or not isinstance(value, bytes):
            continue
        for sub_number, sub_value in fields(value):
            if not isinstance(sub_value, bytes):
                continue
            if sub_number == 1:
                spec["resourceAttributes"] = _strings(sub_value, _RESOURCE_ATTRIBUTE_FIELDS)
            elif sub_number == 2:
                spec["nonResourceAttributes"] = _strings(sub_value, _NON_RESOURCE_FIELDS)
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec}


def _raw(body: bytes) -> bytes:
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    return next((v for n, v in fields(body[len(MAGIC) :]) if n == 2 and isinstance(v, bytes)), b"")


def _message(data: bytes, number: int) -> bytes:
    return next((v for n, v in fields(data) if n == number and isinstance(v, bytes)), b"")


def _repeated_strings(data: bytes, number: int) -> list[str]:
    return [v.decode("utf-8", "replace") for n, v in fields(data) if n == number and isinstance(v, bytes)]


def decode(kind: str, body: bytes) -> dict[str, Any]:
    """A review or TokenRequest body (JSON-shaped) from its protobuf encoding; ``kind`` says which.

    Raises:
        ProtobufError: not a Kubernetes protobuf envelope, malformed, or a kind not decoded here.
    """
    if kind == "SelfSubjectAccessReview":
        return decode_ssar(body)
    raw = _raw(body)
    if kind == "SelfSubjectReview":
        return {"apiVersion": "authentication.k8s.io/v1", "kind": kind}
    spec_bytes = _message(raw, 2)
    spec: dict[str, Any] = {}
    if kind == "SelfSubjectRulesReview":
        spec.update(_strings(spec_bytes, {1: "namespace"}))
        return {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec}
    if kind == "SubjectAccessReview":
        for number, value in fields(spec_bytes):
            if not isinstance(value, bytes):
                continue
            if number == 1:
                spec["resourceAttributes"] = _strings(value, _RESOURCE_ATTRIBUTE_FIELDS)
            elif number == 2:
                spec["nonResourceAttributes"] = _strings(value, _NON_RESOURCE_FIELDS)
            elif number == 3:
                spec["user"] = value.decode("utf-8", "replace")
            elif number == 6:
                spec["uid"] = value.decode("utf-8", "replace")
        groups = _repeated_strings(spec_bytes, 4)
        if groups:
            spec["groups"] = groups
        return {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec}
    if kind == "TokenRequest":
        audiences = _repeated_strings(spec_bytes, 1)
        if audiences:
            spec["audiences"] = audiences
        for number, value in fields(spec_bytes):
            if number == 4 and isinstance(value, int):
                spec["expirationSeconds"] = value
            elif number == 3 and isinstance(value, bytes):
                spec["boundObjectRef"] = _strings(value, {1: "kind", 2: "apiVersion", 3: "name", 4: "uid"})
        return {"apiVersion": "authentication.k8s.io/v1", "kind": kind, "spec": spec}
    raise ProtobufError(f"protobuf bodies of {kind} are not decoded")
