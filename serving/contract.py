"""The service's published contract: its OpenAPI document, and the request checks that
BentoML does not make.

BentoML 1.4 builds ``/docs.json`` from the endpoint signatures, but (in
``_bentoml_sdk/method.py``) flattens every schema to the first branch of an ``anyOf``,
so a nullable field is documented as non-null; marks no request body as required;
and documents every error body with ``detail`` as a string, while the 400 it sends
carries pydantic's list of errors. It picks the request decoder by Content-Type and
falls back to JSON for any type it does not know, answers 500 to a multipart type
without a boundary, and reads a body of any size.

``openapi_document`` builds the document from the same pydantic types that validate
the requests (``serving.schemas``), in OpenAPI 3.0 (``nullable`` for ``null``), with
the error bodies the service really sends. ``ContractMiddleware``, in front of the
public service, serves it at ``/docs.json`` and checks every POST to an endpoint
before BentoML reads it: 413 over the byte limit (by Content-Length, without reading;
else while reading), 415 unless the Content-Type is ``application/json`` (no
Content-Type is allowed only with no body); any other method on an endpoint gets a
405 in the same JSON error shape, with ``Allow: POST`` (BentoML's was plain text).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from serving.schemas import ErrorDetail, ErrorResponse, ValidationErrorResponse

OPENAPI_VERSION = "3.0.3"
JSON_MEDIA_TYPE = "application/json"
REF_TEMPLATE = "#/components/schemas/{model}"
DOCS_PATH = "/docs.json"

# What each error status of an endpoint means, and the body it carries.
ERROR_RESPONSES: dict[int, tuple[str, type]] = {
    400: (
        "The body is not JSON, or a field breaks the schema; `detail[].loc` names it "
        "(empty for a body that is not JSON).",
        ValidationErrorResponse,
    ),
    413: ("The body is larger than the byte limit (`limits.max_body_bytes`).", ErrorResponse),
    415: (
        "The Content-Type is not application/json (a charset must be utf-8), or a body "
        "was sent without one.",
        ErrorResponse,
    ),
    500: ("An unexpected error: see the server log.", ErrorResponse),
    503: ("The model queue cannot serve the request within its latency budget.", ErrorResponse),
    504: ("The request was not served within the server timeout.", ErrorResponse),
}


# --- the document -------------------------------------------------------------------


def to_openapi30(node: Any) -> Any:
    """A pydantic (JSON Schema 2020-12) schema in OpenAPI 3.0 terms.

    ``anyOf [X, {"type": "null"}]`` becomes X with ``nullable: true`` (a ``$ref`` is
    wrapped in ``allOf``, since 3.0 ignores keywords beside a ``$ref``; an ``enum``
    gets null as a value); ``const`` becomes a one-value ``enum``.
    """
    if isinstance(node, list):
        return [to_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: to_openapi30(value) for key, value in node.items()}
    branches = node.get("anyOf")
    if branches is not None and {"type": "null"} in branches:
        others = [branch for branch in branches if branch != {"type": "null"}]
        del node["anyOf"]
        if len(others) > 1:
            node["anyOf"] = others
        elif "$ref" in others[0]:
            node["allOf"] = others
        else:
            node = {**node, **others[0]}
        node["nullable"] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("nullable") and None not in node.get("enum", [None]):
        node["enum"] = [*node["enum"], None]  # 3.0.3: an enum must list null to allow it
    return node


def collect_schema(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """``schema`` in OpenAPI 3.0 terms, its ``$defs`` moved into ``components``.

    Two definitions of one name must agree (a model used by a request and a response
    must have one schema in both modes).
    """
    for name, definition in schema.pop("$defs", {}).items():
        definition = to_openapi30(definition)
        if components.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are named {name!r}")
    return to_openapi30(schema)


def add_component(name: str, schema: dict[str, Any], components: dict[str, Any]) -> None:
    """``schema`` (and its ``$defs``) into ``components`` under ``name``."""
    collect_schema({"$defs": {name: collect_schema(schema, components)}}, components)


def model_schema(model: Any, mode: str, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of a pydantic model (or a BentoML IO descriptor built on one): a
    reference to its component, or inline for a list."""
    schema = collect_schema(
        model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode), components
    )
    schema.pop("root_input", None)
    if schema.get("type") != "object":
        return schema
    # BentoML wraps the declared type in a subclass named <type>IODescriptor.
    name = schema["title"] = schema["title"].removesuffix("IODescriptor")
    add_component(name, schema, components)
    return {"$ref": REF_TEMPLATE.format(model=name)}


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The component a ``$ref`` schema points at (the schema itself otherwise)."""
    ref = schema.get("$ref")
    return components[ref.rsplit("/", 1)[1]] if ref else schema


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON_MEDIA_TYPE: {"schema": schema}}


def openapi_document(
    service: Any, success_headers: dict[str, dict[str, Any]], max_body_bytes: int
) -> dict[str, Any]:
    """The OpenAPI document of a BentoML service whose endpoints take JSON.

    BentoML's own document gives the info block and its infrastructure endpoints;
    every endpoint of ``service`` is rewritten from its input and output types:
    the request body (required when it has required fields, at most
    ``max_body_bytes``), the 200 body with ``success_headers``, and the error bodies
    of ``ERROR_RESPONSES``.
    """
    document = service.openapi_spec.asdict()
    components: dict[str, Any] = {}
    error_refs = {}
    for status, (description, model) in ERROR_RESPONSES.items():
        add_component(
            model.__name__, model.model_json_schema(ref_template=REF_TEMPLATE), components
        )
        error_refs[status] = {
            "description": description,
            "content": json_content({"$ref": REF_TEMPLATE.format(model=model.__name__)}),
        }
    for api in service.apis.values():
        request = model_schema(api.input_spec, "validation", components)
        response = model_schema(api.output_spec, "serialization", components)
        operation = document["paths"][api.route]["post"]
        operation["description"] = inspect.cleandoc(api.doc or "")
        operation["requestBody"] = {
            "required": bool(resolve(request, components).get("required")),
            "description": f"JSON (Content-Type: {JSON_MEDIA_TYPE}), at most "
            f"{max_body_bytes:,} bytes",
            "content": json_content(request),
        }
        operation["responses"] = {
            "200": {
                "description": "Successful Response",
                "headers": success_headers,
                "content": json_content(response),
            },
            **{str(status): error for status, error in error_refs.items()},
        }
    readyz = document["paths"].get("/readyz", {}).get("get")
    if readyz is not None:
        readyz["responses"]["503"] = {"description": "The service is not ready yet"}
    document["openapi"] = OPENAPI_VERSION
    document["components"] = {"schemas": components}
    return document


# --- the checks before BentoML --------------------------------------------------------


def content_type_problem(value: str | None, has_body: bool) -> str | None:
    """Why a Content-Type header value is refused; None when it is acceptable."""
    if value is None:
        return f"a body needs Content-Type: {JSON_MEDIA_TYPE}" if has_body else None
    media_type, *parameters = value.split(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        return f"Content-Type must be {JSON_MEDIA_TYPE}, got {value!r}"
    for parameter in parameters:
        name, _, charset = parameter.partition("=")
        if name.strip().lower() == "charset" and charset.strip(' "').lower() not in {
            "utf-8",
            "utf8",
        }:
            return f"JSON must be UTF-8, got Content-Type {value!r}"
    return None


def error_response(status: int, error_type: str, loc: list[str], message: str) -> JSONResponse:
    body = ErrorResponse(error=message, detail=[ErrorDetail(type=error_type, loc=loc, msg=message)])
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def too_large(max_body_bytes: int) -> JSONResponse:
    return error_response(
        413, "body_too_large", ["body"], f"the request body is over {max_body_bytes} bytes"
    )


def wrong_method(method: str, path: str) -> JSONResponse:
    response = error_response(
        405, "method_not_allowed", ["method"], f"{path} takes POST, not {method}"
    )
    response.headers["Allow"] = "POST"
    return response


class ContractMiddleware:
    """ASGI middleware: serves the OpenAPI document and checks POSTs to ``endpoints``.

    A refused request is answered without being read; uvicorn reads and discards the
    rest of its body, so the client still gets the response.
    """

    def __init__(
        self,
        app: Any,
        document: Callable[[], dict[str, Any]],
        endpoints: Collection[str],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.build_document = document
        self.endpoints = frozenset(endpoints)
        self.max_body_bytes = max_body_bytes
        self._document: dict[str, Any] | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path == DOCS_PATH and method in {"GET", "HEAD"}:
            if self._document is None:
                self._document = self.build_document()
            return await JSONResponse(self._document)(scope, receive, send)
        if path not in self.endpoints:
            return await self.app(scope, receive, send)
        if method != "POST":
            return await wrong_method(method, path)(scope, receive, send)

        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return await too_large(self.max_body_bytes)(scope, receive, send)
        content_type = headers.get("content-type")
        if content_type is not None and (problem := content_type_problem(content_type, True)):
            return await self._refuse_media_type(problem, scope, receive, send)

        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return await too_large(self.max_body_bytes)(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if problem := content_type_problem(content_type, bool(body)):
            return await self._refuse_media_type(problem, scope, receive, send)

        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse_media_type(problem: str, scope: dict, receive: Callable, send: Callable):
        response = error_response(
            415, "unsupported_media_type", ["header", "content-type"], problem
        )
        await response(scope, receive, send)
