"""The published contract, in process: the OpenAPI document, the request models and the
checks the middleware makes before BentoML reads a body. No server, no model.

Each test named after a schemathesis finding is its regression test; the same cases
against a real server are in test_serving_http.py.
"""

import json
import re
import sys
import typing
from pathlib import Path

import jsonschema_rs
import pytest
import requests
import schemathesis
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pipeline.labels import ACTORS, STANCES
from serving import schemas
from serving.contract import DOCS_PATH, ContractMiddleware, content_type_problem, to_openapi30
from serving.service import (
    BACKEND_HEADER,
    PRECISION_HEADER,
    StanceService,
    service_openapi_document,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = ("/classify", "/score", "/metadata")


@pytest.fixture(scope="module")
def document() -> dict:
    return service_openapi_document()


@pytest.fixture(scope="module")
def operations(document: dict):
    """The document loaded by schemathesis: validates responses as its checks do."""
    schema = schemathesis.openapi.from_dict(document)
    return {path: schema[path]["POST"] for path in ENDPOINTS}


def component(document: dict, name: str) -> dict:
    return document["components"]["schemas"][name]


def request_schema(document: dict, path: str) -> dict:
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return component(document, body["schema"]["$ref"].rsplit("/", 1)[1])


def response(path: str, status: int, body: object, headers: dict | None = None):
    return schemathesis.Response(
        status_code=status,
        headers={"Content-Type": ["application/json"], **(headers or {})},
        content=json.dumps(body).encode(),
        request=requests.Request("POST", f"http://127.0.0.1{path}").prepare(),
        elapsed=0.0,
        verify=True,
    )


def bentoml_400(error: ValidationError) -> dict:
    """The body BentoML sends for a request that fails validation (its api_endpoint_wrapper)."""
    return {
        "error": f"{error.error_count()} validation error for {error.title}",
        "detail": error.errors(include_context=False, include_input=False),
    }


# --- the document -----------------------------------------------------------------------


def test_no_body_is_invalid_for_classify_and_score_by_the_schema(document: dict) -> None:
    """Fuzz finding: a request with no body was schema-valid, and got 400."""
    required = {
        path: document["paths"][path]["post"]["requestBody"]["required"] for path in ENDPOINTS
    }
    assert required == {"/classify": True, "/score": True, "/metadata": False}
    assert request_schema(document, "/metadata")["additionalProperties"] is False


def test_enums_name_the_actors_and_stances_in_requests_and_responses(document: dict) -> None:
    assert component(document, "ClassifyItem")["properties"]["actor"]["enum"] == list(ACTORS)
    actors_filter = request_schema(document, "/score")["properties"]["actors"]
    assert actors_filter["items"]["enum"] == list(ACTORS)
    stance = component(document, "ActorStance")["properties"]
    assert stance["actor"]["enum"] == list(ACTORS)
    assert stance["stance"]["enum"] == list(STANCES)
    scores = component(document, "StanceScores")
    assert list(scores["properties"]) == scores["required"] == list(STANCES)
    assert scores["additionalProperties"] is False
    summary = component(document, "ActorSummary")["properties"]
    assert summary["dominant_stance"]["enum"] == [*STANCES, None]
    properties = component(document, "ServiceMetadata")["properties"]
    assert properties["labels"]["items"]["enum"] == list(STANCES)
    assert properties["actors"]["items"]["enum"] == list(ACTORS)


def test_limits_are_in_the_schema(document: dict) -> None:
    items = request_schema(document, "/classify")["properties"]["items"]
    assert (items["minItems"], items["maxItems"]) == (1, schemas.MAX_ITEMS)
    sentence = component(document, "ClassifyItem")["properties"]["sentence"]
    assert (sentence["minLength"], sentence["maxLength"]) == (1, schemas.MAX_SENTENCE_CHARS)
    text = request_schema(document, "/score")["properties"]["text"]
    assert (text["minLength"], text["maxLength"]) == (1, schemas.MAX_TEXT_CHARS)
    for path in ENDPOINTS:
        body = document["paths"][path]["post"]["requestBody"]
        assert f"{schemas.MAX_BODY_BYTES:,} bytes" in body["description"]
        assert "413" in document["paths"][path]["post"]["responses"]


def test_actors_null_is_documented_as_allowed(document: dict) -> None:
    """Fuzz finding: `"actors": null` was served although the schema forbade it."""
    actors = request_schema(document, "/score")["properties"]["actors"]
    assert actors["nullable"] is True
    assert (
        schemas.ScoreRequest.model_validate({"text": "Japan spoke.", "actors": None}).actors is None
    )


def test_repeated_actors_are_documented_as_invalid(document: dict) -> None:
    """Fuzz finding: a repeated actor was schema-valid, and got 400."""
    actors = request_schema(document, "/score")["properties"]["actors"]
    assert actors["uniqueItems"] is True
    assert actors["maxItems"] == len(ACTORS)
    with pytest.raises(ValidationError, match="must not repeat an actor"):
        schemas.ScoreRequest.model_validate({"text": "Japan spoke.", "actors": ["us", "us"]})


def optional_fields(model: type[BaseModel]) -> set[str]:
    return {
        name
        for name, field in model.model_fields.items()
        if type(None) in typing.get_args(field.annotation)
    }


@pytest.mark.parametrize(
    "model",
    [schemas.ServiceMetadata, schemas.ModelRef, schemas.ActorSummary, schemas.ErrorResponse],
)
def test_exactly_the_optional_response_fields_are_nullable(document: dict, model) -> None:
    """Fuzz finding: /metadata's null lineage fields were documented as strings."""
    properties = component(document, model.__name__)["properties"]
    nullable = {name for name, schema in properties.items() if schema.get("nullable")}
    assert nullable == optional_fields(model)


def test_metadata_of_a_model_without_lineage_matches_the_document(operations) -> None:
    model = schemas.ModelRef(
        name="stance-classifier", version="abc", tag="stance-classifier:abc",
        mlflow_run_id=None, backend="onnx", precision="int8",
    )  # fmt: skip
    metadata = schemas.ServiceMetadata(
        model=model, registry_alias=None, base_model=None, training_data_md5=None,
        labels=list(STANCES), actors=list(ACTORS),
        limits=schemas.Limits(
            max_tokens=96, max_text_chars=1, max_sentence_chars=1, max_items=1, max_body_bytes=1
        ),
        dominant_stance_rule="argmax of the means",
    )  # fmt: skip
    headers = {BACKEND_HEADER: ["onnx"], PRECISION_HEADER: ["int8"]}
    body = metadata.model_dump(mode="json")
    operations["/metadata"].validate_response(response("/metadata", 200, body, headers))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/classify", {"items": {}}),
        ("/classify", {"items": [{"sentence": " ", "actor": "korea"}]}),
        ("/score", {"text": "0", "actors": {}}),
        ("/metadata", [None, None]),
        ("/score", "not an object"),
    ],
)
def test_the_400_body_bentoml_sends_matches_the_document(operations, path: str, body) -> None:
    """Fuzz finding: every 400 broke the published schema (`detail` typed as a string)."""
    model = {"/classify": schemas.ClassifyRequest, "/score": schemas.ScoreRequest}.get(
        path, schemas.MetadataRequest
    )
    with pytest.raises(ValidationError) as raised:
        model.model_validate_json(json.dumps(body))
    operations[path].validate_response(response(path, 400, bentoml_400(raised.value)))
    with pytest.raises(Exception, match="violates schema"):
        operations[path].validate_response(response(path, 400, {"error": "x", "detail": "x"}))


def test_every_error_status_documents_an_error_body(document: dict) -> None:
    for path in ENDPOINTS:
        responses = document["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "400", "413", "415", "500", "503", "504"}
        for status, documented in responses.items():
            ref = documented["content"]["application/json"]["schema"].get("$ref", "")
            if status != "200":
                assert ref.endswith(
                    "ValidationErrorResponse" if status == "400" else "/ErrorResponse"
                )


def test_to_openapi30_rewrites_nulls_refs_and_consts() -> None:
    assert to_openapi30({"anyOf": [{"type": "string"}, {"type": "null"}], "title": "T"}) == {
        "title": "T", "type": "string", "nullable": True,
    }  # fmt: skip
    assert to_openapi30({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}) == {
        "allOf": [{"$ref": "#/x"}], "nullable": True,
    }  # fmt: skip
    assert to_openapi30({"anyOf": [{"enum": ["a"], "type": "string"}, {"type": "null"}]})[
        "enum"
    ] == ["a", None]
    assert to_openapi30({"const": 3}) == {"enum": [3]}


# --- request models -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "body", "loc"),
    [
        (schemas.ScoreRequest, {"text": "China spoke.", "actor": ["china"]}, ("actor",)),
        (schemas.ClassifyRequest, {"items": [{"sentence": "x", "actor": "us"}], "x": 1}, ("x",)),
        (schemas.MetadataRequest, {"verbose": True}, ("verbose",)),
    ],
)
def test_an_unknown_top_level_key_is_refused_and_named(model, body: dict, loc: tuple) -> None:
    """`{"text": ..., "actor": [...]}` (for `actors`) used to score every actor silently."""
    with pytest.raises(ValidationError) as raised:
        model.model_validate(body)
    assert [(e["type"], e["loc"]) for e in raised.value.errors()] == [("extra_forbidden", loc)]


# Characters some definition of \s counts as whitespace: Python's str.isspace, the
# ECMAScript and Rust regex classes. None may make a sentence non-blank.
WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()] + ["\ufeff"]


def test_the_not_blank_pattern_is_the_servers_check_in_every_regex_dialect() -> None:
    """Fuzz-style finding: a whitespace-only sentence was schema-valid and got 400."""
    documented = jsonschema_rs.validator_for(
        {"type": "string", "pattern": schemas.NOT_BLANK_PATTERN}
    )
    for blank in [*WHITESPACE, " \t\n", "\u3000\u00a0\u2028"]:
        assert not documented.is_valid(blank), repr(blank)
        with pytest.raises(ValidationError, match="empty or only whitespace"):
            schemas.ClassifyItem(sentence=blank, actor="us")
    for text in ["a", " x ", "\u200b", "\x00", "\u3000台湾", "\ufeffJapan"]:
        assert documented.is_valid(text), repr(text)
        assert schemas.ClassifyItem(sentence=text, actor="us").sentence == text
    assert re.search(r"\s", "\x1c") and not re.search(schemas.NOT_BLANK_PATTERN, "\x1c")


def test_every_request_the_field_limits_allow_fits_the_byte_limit() -> None:
    # The widest JSON of a character: a non-BMP one escaped as a surrogate pair (12 bytes).
    widest = "\U0001f600"
    items = [{"sentence": widest * schemas.MAX_SENTENCE_CHARS, "actor": "other"}]
    classify = schemas.ClassifyRequest.model_validate({"items": items * schemas.MAX_ITEMS})
    score = schemas.ScoreRequest.model_validate(
        {"text": widest * schemas.MAX_TEXT_CHARS, "actors": list(ACTORS)}
    )
    for request in (classify, score):
        body = json.dumps(request.model_dump(), indent=1)  # ensure_ascii: \ud83d\ude00
        assert len(body) <= schemas.MAX_BODY_BYTES


def test_no_request_field_is_a_file_a_url_or_a_path(document: dict) -> None:
    """BentoML downloads a URL given for a file-typed input and spools uploads to disk;
    no input here is file-typed, every request is plain JSON."""
    for api in StanceService.apis.values():
        assert api.input_spec.multipart_fields == []
        assert api.input_spec.mime_type() == "application/json"
    text = json.dumps(document["components"]) + json.dumps(document["paths"])
    assert '"format": "binary"' not in text and '"format": "uri"' not in text


# --- security defaults ---------------------------------------------------------------------


def test_the_service_binds_loopback_unless_told_otherwise() -> None:
    assert StanceService.config["http"]["host"] == "127.0.0.1"
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    serve_lines = [
        line for line in makefile.splitlines() if line.startswith("\t") and "bentoml serve" in line
    ]
    assert serve_lines and all("--host 127.0.0.1" in line for line in serve_lines)


def test_no_internal_service_takes_pickles() -> None:
    """BentoML calls a dependent service with pickled requests over a local socket; the
    service has none (the model runs in process behind serving.batcher)."""
    assert dict(StanceService.dependencies) == {}


# --- the middleware -------------------------------------------------------------------------

LIMIT = 64


@pytest.fixture
def client():
    """ContractMiddleware in front of a tiny app that echoes what it read."""
    received: list[bytes] = []

    async def echo(request: Request) -> JSONResponse:
        received.append(await request.body())
        return JSONResponse({"length": len(received[-1])})

    app = Starlette(routes=[Route("/classify", echo, methods=["POST"])])
    app.add_middleware(
        ContractMiddleware,
        document=lambda: {"openapi": "3.0.3", "built": len(received)},
        endpoints=["/classify"],
        max_body_bytes=LIMIT,
    )
    with TestClient(app) as test_client:
        test_client.received = received
        yield test_client


def post(client, body: bytes | None, content_type: str | None = "application/json", **kwargs):
    headers = {} if content_type is None else {"Content-Type": content_type}
    return client.post("/classify", content=body, headers=headers, **kwargs)


def test_a_json_body_reaches_the_app_unchanged(client) -> None:
    body = b'{"items": []}'
    assert post(client, body).json() == {"length": len(body)}
    assert post(client, body, "Application/JSON; charset=UTF-8").status_code == 200
    assert client.received == [body, body]


def test_no_body_and_no_content_type_reaches_the_app(client) -> None:
    assert post(client, None, content_type=None).json() == {"length": 0}


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",  # fuzz finding: no boundary -> 500 from BentoML
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",  # curl -d without -H
        "text/plain",
        "application/vnd.bentoml+pickle",  # BentoML answered with a list as the body
        "application/json; charset=latin-1",
        "",
        None,  # a body without a Content-Type
    ],
)
def test_a_body_that_is_not_declared_json_is_a_415(client, content_type: str | None) -> None:
    refused = post(client, b'{"items": []}', content_type)

    assert refused.status_code == 415
    body = refused.json()
    assert body["detail"][0]["loc"] == ["header", "content-type"]
    assert "application/json" in body["error"] or "UTF-8" in body["error"]
    assert client.received == []


def test_a_body_over_the_limit_is_a_413_by_content_length_or_while_streaming(client) -> None:
    refused = post(client, b"x" * (LIMIT + 1))
    streamed = post(client, iter([b"x" * LIMIT, b"x"]))  # chunked: no Content-Length

    for response_ in (refused, streamed):
        assert response_.status_code == 413
        assert response_.json()["detail"][0]["loc"] == ["body"]
    assert post(client, b" " * LIMIT).status_code == 200  # the limit itself is allowed
    assert client.received == [b" " * LIMIT]


def test_the_document_is_served_and_built_once(client) -> None:
    first = client.get(DOCS_PATH).json()
    post(client, b"{}")
    assert client.get(DOCS_PATH).json() == first == {"openapi": "3.0.3", "built": 0}


def test_other_methods_on_an_endpoint_are_a_json_405_naming_post(client) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        refused = client.request(method, "/classify")
        assert refused.status_code == 405, method
        assert refused.headers["allow"] == "POST"
        body = refused.json()
        assert body["detail"][0] == {
            "type": "method_not_allowed",
            "loc": ["method"],
            "msg": f"/classify takes POST, not {method}",
        }
    assert client.received == []


def test_other_paths_pass_through(client) -> None:
    assert (
        client.post("/elsewhere", content=b"x", headers={"Content-Type": "text/plain"}).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("value", "has_body", "refused"),
    [
        ("application/json", True, False),
        ("application/json;charset=utf8", True, False),
        ('application/json; charset="UTF-8"', True, False),
        ("application/json-patch+json", True, True),
        ("application/jsonx", True, True),
        (None, False, False),
        (None, True, True),
    ],
)
def test_content_type_rules(value: str | None, has_body: bool, refused: bool) -> None:
    assert (content_type_problem(value, has_body) is not None) is refused
