"""The OpenAPI 3.1 document of the public API: paths from the route table, schemas from the pydantic models."""

from __future__ import annotations

import importlib
import re

from pydantic.json_schema import models_json_schema

from shared.routes import Route, public_routes

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "message", "type"],
            "properties": {"field": {"type": "string", "examples": ["body.price.amount"]},
                           "message": {"type": "string"}, "type": {"type": "string"}}}},
    },
    "additionalProperties": True,
}
ERRORS = {400: "Malformed request", 401: "Missing, invalid or expired token", 403: "Not allowed for this token",
          404: "Not found", 409: "Conflict with the current state", 413: "Body over 64 KiB",
          415: "Body is not JSON", 422: "Invalid fields or query parameters", 503: "A backing service is unavailable"}


def _model(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def openapi() -> dict:
    routes = public_routes()
    wanted = sorted({(r.request, "validation") for r in routes if r.request} |
                    {(r.response, "serialization") for r in routes if r.response})
    keys, schemas = models_json_schema([(_model(name), mode) for name, mode in wanted],
                                       ref_template="#/components/schemas/{model}")
    components = schemas.get("$defs", {}) | {"Problem": PROBLEM}
    refs = {name: keys[(_model(name), mode)]["$ref"] for name, mode in wanted}
    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Serverless shop API", "version": "0.1.0",
                 "description": "Every operation is served by its own Knative function (`x-function`)."},
        "servers": [{"url": "http://127.0.0.1:8080", "description": "make up"}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


def _operation(route: Route, refs: dict[str, str]) -> dict:
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"\{(\w+)\}", route.path)]
    if route.query:
        schema = _model(route.query).model_json_schema()
        parameters += [{"name": name, "in": "query", "required": name in schema.get("required", []),
                        "schema": _inline(spec)} for name, spec in schema["properties"].items()]
    if route.name == "orders-create-order":
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": True,
                           "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,64}$"}})
    operation: dict = {"operationId": route.name, "summary": route.summary, "x-function": route.name,
                       "parameters": parameters, "responses": {}}
    if route.request:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": refs[route.request]}}}}
    success: dict = {"description": "Success"}
    if route.response:
        success["content"] = {"application/json": {"schema": {"$ref": refs[route.response]}}}
    operation["responses"][str(route.status)] = success
    for status in _errors(route):
        operation["responses"][str(status)] = {"description": ERRORS[status], "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    if route.auth in ("user", "admin"):
        operation["security"] = [{"bearer": []}]
    elif route.auth == "optional":
        operation["security"] = [{}, {"bearer": []}]
    return operation


def _errors(route: Route) -> list[int]:
    statuses = {404, 503}
    if route.request:
        statuses |= {400, 413, 415, 422}
    if route.query or "{" in route.path:
        statuses.add(422)
    if route.auth != "none":
        statuses |= {401, 403}
    if route.method in ("POST", "PUT", "PATCH"):
        statuses.add(409)
    return sorted(statuses)


def _inline(spec: dict) -> dict:
    # Query parameters are scalars; drop pydantic's titles for a tidier document.
    return {key: value for key, value in spec.items() if key != "title"}
