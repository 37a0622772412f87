"""A tiny kopf operator run by tests/simulator/test_kopf.py against the simulator (not collected by pytest)."""

import logging
from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 30
    settings.persistence.finalizer = "example.dev/widget-operator"


@kopf.on.create("example.dev", "v1", "widgets")
def created(spec: dict[str, Any], patch: kopf.Patch, body: kopf.Body, **_: Any) -> dict[str, Any]:
    kopf.info(body, reason="Sized", message=f"widget has size {spec['size']}")
    patch.status["phase"] = "Handled"
    return {"doubled": spec["size"] * 2}


@kopf.on.update("example.dev", "v1", "widgets", field="spec.size")
def resized(old: Any, new: Any, patch: kopf.Patch, body: kopf.Body, **_: Any) -> None:
    kopf.warn(body, reason="Resized", message=f"size {old} -> {new}")
    patch.status["phase"] = f"Resized to {new}"


@kopf.on.delete("example.dev", "v1", "widgets")
def deleted(body: kopf.Body, **_: Any) -> None:
    kopf.info(body, reason="Deleting", message="cleaning up")
