"""Minimal OpenAPI v3 documents: enough for ``kubectl apply``'s validation (kubevirt-api.md §8.8).

kubectl's QueryParamVerifierV3 looks, in the group/version document, for a PATCH operation whose
``x-kubernetes-group-version-kind`` matches the object and which takes a ``fieldValidation`` query
parameter; then it validates server-side. Schemas are permissive (preserve unknown fields).
"""

import hashlib
import json
from typing import Any

from .resources import STATIC, Registry, ResourceType

Obj = dict[str, Any]

_JSON_PATCH = "application/json-patch+json"
_MERGE_PATCH = "application/merge-patch+json"
_APPLY = "application/apply-patch+yaml"


def gv_path(group: str, version: str) -> str:
    """The ``/openapi/v3`` key of a group/version (``api/v1``, ``apis/kubevirt.io/v1``)."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _schema_name(r: ResourceType) -> str:
    group = r.group or "core"
    return f"{group}.{r.version}.{r.kind}"


def _param(name: str, where: str = "query", required: bool = False) -> Obj:
    return {
        "name": name,
        "in": where,
        "required": required,
        "schema": {"type": "string", "uniqueItems": True},
    }


def gv_document(group: str, version: str, registry: Registry = STATIC) -> Obj | None:
    """The OpenAPI v3 document of one group/version, or None when not served."""
    served = [r for r in registry.types() if r.group == group and r.version == version and r.stored]
    if not served:
        return None
    paths: Obj = {}
    schemas: Obj = {}
    prefix = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    for r in served:
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        ref = {"$ref": f"#/components/schemas/{_schema_name(r)}"}
        schemas[_schema_name(r)] = {
            "type": "object",
            "description": f"{r.kind} ({r.api_version})",
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [gvk],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
        base = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
        scope_params = [_param("namespace", "path", True)] if r.namespaced else []
        response = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        paths[f"{base}/{{name}}"] = _object_path(r, gvk, ref, response, scope_params)
        paths[base] = _collection_path(r, gvk, ref, response, scope_params)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _object_path(r: ResourceType, gvk: Obj, ref: Obj, response: Obj, scope_params: list[Obj]) -> Obj:
    """The path item of one object: get, and put, patch and delete as far as the kind's verbs allow."""
    # Strategic merge patch is accepted for built-in kinds but not advertised: kubectl computes an
    # advertised kind's patch from the schema's x-kubernetes-patch-merge-key, and these permissive
    # schemas have none; unadvertised, it uses its compiled-in types, which know them.
    patch_types = [_JSON_PATCH, _MERGE_PATCH, _APPLY]
    item: Obj = {
        "parameters": [_param("name", "path", True), *scope_params],
        "get": {
            "operationId": f"read{r.kind}",
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": gvk,
            "responses": response,
        },
    }
    if "update" in r.verbs:
        item["put"] = {
            "operationId": f"replace{r.kind}",
            "x-kubernetes-action": "put",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")],
            "requestBody": {"content": {"application/json": {"schema": ref}}},
            "responses": response,
        }
    if "patch" in r.verbs:
        item["patch"] = {
            "operationId": f"patch{r.kind}",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [
                _param("dryRun"),
                _param("fieldManager"),
                _param("fieldValidation"),
                _param("force"),
            ],
            "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in patch_types}},
            "responses": response,
        }
    if "delete" in r.verbs:
        item["delete"] = {
            "operationId": f"delete{r.kind}",
            "x-kubernetes-action": "delete",
            "x-kubernetes-group-version-kind": gvk,
            "responses": response,
        }
    return item


def _collection_path(r: ResourceType, gvk: Obj, ref: Obj, response: Obj, scope_params: list[Obj]) -> Obj:
    """The path item of the kind's collection: list, and post when the kind can be created."""
    collection: Obj = {
        "parameters": scope_params,
        "get": {
            "operationId": f"list{r.kind}",
            "x-kubernetes-action": "list",
            "x-kubernetes-group-version-kind": gvk,
            "responses": {"200": {"description": "OK"}},
        },
    }
    if "create" in r.verbs:
        collection["post"] = {
            "operationId": f"create{r.kind}",
            "x-kubernetes-action": "post",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")],
            "requestBody": {"content": {"application/json": {"schema": ref}}},
            "responses": response,
        }
    return collection


def build_documents(registry: Registry = STATIC) -> tuple[Obj, dict[str, bytes]]:
    """The ``/openapi/v3`` index and every GV document (serialised), keyed by ``gv_path``."""
    docs: dict[str, bytes] = {}
    index: Obj = {"paths": {}}
    for group, versions in registry.group_versions().items():
        for version in versions:
            doc = gv_document(group, version, registry)
            if doc is None:
                continue
            body = json.dumps(doc, separators=(",", ":")).encode()
            key = gv_path(group, version)
            docs[key] = body
            digest = hashlib.sha512(body).hexdigest()[:64].upper()
            index["paths"][key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return index, docs
