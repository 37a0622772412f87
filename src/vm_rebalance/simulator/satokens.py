"""ServiceAccount tokens: what the TokenRequest API (``serviceaccounts/token``, ``kubectl create token``)
hands out and what the authenticator accepts.

Tokens are JWTs with kube-apiserver's claims (``iss``, ``sub`` = ``system:serviceaccount:NS:NAME``,
``aud``, ``exp``, ``iat``, ``nbf``, ``jti``, ``kubernetes.io: {namespace, serviceaccount: {name, uid}}``)
signed with HS256 and a key made when the API server starts (a real cluster signs with RS256 or ES256
and publishes its keys; nothing here verifies them but the simulator itself). As in kube-apiserver a
token is valid only while its ServiceAccount exists with the same uid, and until it expires.

Lifetimes run on the wall clock, not on simulated time, so a simulation running 500 times faster than
real time does not expire a test's token in seconds.
"""

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCES = (ISSUER,)
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 2**32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    """The parts of a verified token the authenticator needs."""

    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: int


class TokenIssuer:
    """Signs and verifies ServiceAccount tokens with one random key."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _sign(self, signing_input: bytes) -> str:
        return _b64(hmac.new(self._key, signing_input, hashlib.sha256).digest())

    def issue(
        self,
        namespace: str,
        name: str,
        uid: str,
        *,
        audiences: tuple[str, ...] = DEFAULT_AUDIENCES,
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A token for ServiceAccount ``namespace/name`` (uid ``uid``) and its expiry (Unix seconds)."""
        issued = int(time.time() if now is None else now)
        expires = issued + int(expiration_seconds)
        claims: dict[str, Any] = {
            "aud": list(audiences),
            "exp": expires,
            "iat": issued,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
            "nbf": issued,
            "sub": f"system:serviceaccount:{namespace}:{name}",
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        return f"{header}.{payload}.{self._sign(signing_input)}", expires

    def verify(self, token: str, *, now: float | None = None) -> TokenClaims | None:
        """The claims of a token this issuer signed that has not expired, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = self._sign(f"{parts[0]}.{parts[1]}".encode())
        if not hmac.compare_digest(expected, parts[2]):
            return None
        try:
            claims = json.loads(_unb64(parts[1]))
            k8s = claims["kubernetes.io"]
            expires = int(claims["exp"])
            not_before = int(claims.get("nbf", 0))
            audiences = claims.get("aud") or []
            result = TokenClaims(
                namespace=str(k8s["namespace"]),
                name=str(k8s["serviceaccount"]["name"]),
                uid=str(k8s["serviceaccount"]["uid"]),
                audiences=tuple(str(a) for a in audiences),
                expires=expires,
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        current = time.time() if now is None else now
        if current >= expires or current < not_before - 60:
            return None
        return result
