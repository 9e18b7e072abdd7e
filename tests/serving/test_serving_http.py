"""The service over HTTP: a real `bentoml serve` subprocess on 127.0.0.1."""

import concurrent.futures
import json
from pathlib import Path

import pytest
import requests
import schemathesis

from pipeline.labels import ACTORS, STANCES
from pipeline.records import load_labelled
from serving.schemas import MAX_BODY_BYTES, MAX_ITEMS, MAX_SENTENCE_CHARS, MAX_TEXT_CHARS
from training.evaluate import predict_rows
from training.metrics import stance_metrics

pytestmark = pytest.mark.slow

TIMEOUT = 60


def post(url: str, body: object) -> requests.Response:
    return requests.post(url, json=body, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def documented(server: str):
    """Checks a response against the server's own /docs.json (status, headers, body),
    as schemathesis's response checks do."""
    schema = schemathesis.openapi.from_url(f"{server}/docs.json")

    def check(response: requests.Response) -> requests.Response:
        path = response.request.path_url
        schema[path][response.request.method].validate_response(response)
        return response

    return check


def assert_distribution(result: dict) -> None:
    assert set(result) == {"actor", "stance", "scores", "truncated"}
    assert list(result["scores"]) == list(STANCES)
    assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["stance"] == max(result["scores"], key=result["scores"].get)


def test_bentoml_system_endpoints_stay_available(server: str) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        assert requests.get(server + path, timeout=TIMEOUT).status_code == 200
    metrics = requests.get(f"{server}/metrics", timeout=TIMEOUT)
    assert metrics.status_code == 200 and "bentoml_service_request" in metrics.text
    # BentoML 1.4 serves the Swagger UI at / and the OpenAPI document at /docs.json.
    assert "swagger-ui" in requests.get(server + "/", timeout=TIMEOUT).text
    spec = requests.get(f"{server}/docs.json", timeout=TIMEOUT).json()
    assert {"/classify", "/score", "/metadata"} <= set(spec["paths"])


def test_classify_returns_one_distribution_per_item_in_order(server: str, documented) -> None:
    places = ["Tokyo", "Beijing", "Washington", "Taipei", "Seoul"]
    items = [
        {"sentence": f"Officials in {place} commented on item {i}.", "actor": actor}
        for i, (actor, place) in enumerate(zip(ACTORS, places, strict=True))
    ]
    response = documented(post(f"{server}/classify", {"items": items}))

    assert response.status_code == 200
    results = response.json()
    assert [r["actor"] for r in results] == list(ACTORS)
    for result in results:
        assert_distribution(result)


def test_concurrent_requests_are_batched_without_mixing_answers(server: str) -> None:
    def classify_alone(sentence: str) -> dict:
        return post(f"{server}/classify", {"items": [{"sentence": sentence, "actor": "china"}]})

    sentences = [f"China issued statement number {i} " + "firmly " * i for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda s: classify_alone(s).json()[0], sentences))
    # The same sentence scored on its own gives the same answer as inside a shared batch.
    for sentence, batched in zip(sentences[:4], together, strict=False):
        alone = classify_alone(sentence).json()[0]
        assert alone["scores"] == pytest.approx(batched["scores"], abs=1e-5)
    assert len({json.dumps(r["scores"]) for r in together}) > 1  # answers are per item


def test_classify_splits_a_maximal_request_and_keeps_order(server: str) -> None:
    items = [{"sentence": f"Japan said {i}.", "actor": ACTORS[i % 5]} for i in range(256)]
    response = post(f"{server}/classify", {"items": items})

    assert response.status_code == 200
    assert [r["actor"] for r in response.json()] == [item["actor"] for item in items]


def test_long_sentence_is_scored_truncated_and_flagged(server: str) -> None:
    long = "Taiwan " + "restated that the strait must remain peaceful and stable " * 40
    response = post(
        f"{server}/classify",
        {
            "items": [
                {"sentence": long, "actor": "taiwan"},
                {"sentence": "Taiwan agreed.", "actor": "taiwan"},
            ]
        },
    )
    assert response.status_code == 200
    flagged, short = response.json()
    assert flagged["truncated"] is True and short["truncated"] is False
    assert_distribution(flagged)


def test_score_returns_sentences_summary_and_model(server: str, documented) -> None:
    text = "Beijing summoned Japan's ambassador.\nThe US urged calm. Nobody else spoke."
    response = documented(post(f"{server}/score", {"text": text}))

    assert response.status_code == 200
    body = response.json()
    sentences = body["sentences"]
    assert [text[s["start"] : s["end"]] for s in sentences] == [s["text"] for s in sentences]
    assert [[p["actor"] for p in s["predictions"]] for s in sentences] == [
        ["japan", "china"],
        ["us"],
        [],
    ]
    for sentence in sentences:
        for prediction in sentence["predictions"]:
            assert_distribution(prediction)
    summary = {s["actor"]: s for s in body["summary"]}
    assert list(summary) == ["japan", "china", "us"]
    for actor_summary in summary.values():
        assert actor_summary["sentence_count"] == 1
        mean = actor_summary["mean_scores"]
        assert sum(mean.values()) == pytest.approx(1.0, abs=1e-5)
        assert actor_summary["dominant_stance"] == max(mean, key=mean.get)
    assert body["model"]["name"] == "stance-watch" and body["model"]["version"] == "7"
    assert body["model"]["mlflow_run_id"] == "run-0123456789abcdef"
    assert body["model"]["tag"].startswith("stance-classifier:")


def test_score_and_classify_share_the_model_queue_and_agree(server: str) -> None:
    """Documents and items sent at the same time go through the one batching endpoint
    of the model service; each row gets the same scores either way."""
    text = (
        "Beijing protested to Tokyo on Monday. Washington urged calm on all sides. "
        "Taipei thanked Japan for its support."
    )

    def score() -> dict:
        return post(f"{server}/score", {"text": text}).json()

    def classify(item: dict) -> dict:
        return post(f"{server}/classify", {"items": [item]}).json()[0]

    rows = [
        {"sentence": "Beijing protested to Tokyo on Monday.", "actor": actor}
        for actor in ("china", "japan")
    ] + [{"sentence": "Washington urged calm on all sides.", "actor": "us"}]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        documents = [pool.submit(score) for _ in range(4)]
        items = [pool.submit(classify, row) for row in rows * 4]
        documents = [d.result() for d in documents]
        items = [i.result() for i in items]

    scored = {
        (s["text"], p["actor"]): p["scores"]
        for s in documents[0]["sentences"]
        for p in s["predictions"]
    }
    for row, result in zip(rows * 4, items, strict=True):
        assert result["scores"] == pytest.approx(scored[(row["sentence"], row["actor"])], abs=1e-5)
    assert all(d == documents[0] for d in documents)


def test_concurrent_documents_each_get_their_own_sentences(server: str) -> None:
    """Found by `make load`: under 16 clients, /score answers lost sentences and their
    predictions (request threads shared one pysbd segmenter, which keeps the text it is
    splitting in an attribute)."""
    from pipeline.documents import candidates

    documents = [
        " ".join(
            f"Officials in Tokyo said on day {day} of round {doc} that Beijing had replied "
            "to the protest, although the talks on fishery imports and travel advice for "
            "students were expected to go ahead as planned."
            for day in range(10)
        )
        for doc in range(96)
    ]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda text: post(f"{server}/score", {"text": text}), documents))

    for text, answer in zip(documents, answers, strict=True):
        assert answer.status_code == 200
        expected = candidates(text)
        sentences = answer.json()["sentences"]
        assert [s["text"] for s in sentences] == [s.text for s in expected.sentences]
        assert sum(len(s["predictions"]) for s in sentences) == len(expected.rows) == 20


def test_score_restricts_to_requested_actors(server: str) -> None:
    text = "Beijing summoned Japan's ambassador. The US urged calm."
    body = post(f"{server}/score", {"text": text, "actors": ["china", "taiwan"]}).json()

    assert [[p["actor"] for p in s["predictions"]] for s in body["sentences"]] == [["china"], []]
    assert [(s["actor"], s["sentence_count"]) for s in body["summary"]] == [
        ("china", 1),
        ("taiwan", 0),
    ]


def test_responses_say_which_backend_and_precision_served_them(server: str) -> None:
    """The pipeline stores ONNX int8; every endpoint says so (headers, and body where
    the response has a model section)."""
    classify = post(f"{server}/classify", {"items": [ITEM]})
    score = post(f"{server}/score", {"text": "China protested. Japan did not respond."})
    metadata = requests.post(f"{server}/metadata", timeout=TIMEOUT)

    for response in (classify, score, metadata):
        assert response.status_code == 200
        assert response.headers["X-Stance-Backend"] == "onnx"
        assert response.headers["X-Stance-Precision"] == "int8"
    for body in (score.json(), metadata.json()):
        assert (body["model"]["backend"], body["model"]["precision"]) == ("onnx", "int8")


def test_metadata_endpoint(server: str, documented) -> None:
    response = documented(requests.post(f"{server}/metadata", timeout=TIMEOUT))

    assert response.status_code == 200
    body = response.json()
    assert body["model"]["tag"].startswith("stance-classifier:")
    assert body["model"]["mlflow_run_id"] == "run-0123456789abcdef"
    assert body["labels"] == list(STANCES) and body["actors"] == list(ACTORS)
    assert body["limits"] == {
        "max_tokens": 32,
        "max_text_chars": 100_000,
        "max_sentence_chars": 10_000,
        "max_items": 256,
        "max_body_bytes": MAX_BODY_BYTES,
    }


ITEM = {"sentence": "Japan spoke.", "actor": "japan"}
BAD_REQUESTS = {
    "empty items": ("/classify", {"items": []}, ["items"]),
    "too many items": ("/classify", {"items": [ITEM] * 257}, ["items"]),
    "empty sentence": (
        "/classify",
        {"items": [ITEM, {"sentence": "", "actor": "us"}]},
        ["items", 1, "sentence"],
    ),
    "blank sentence": (
        "/classify",
        {"items": [{"sentence": " \n\t", "actor": "us"}]},
        ["items", 0, "sentence"],
    ),
    "sentence too long": (
        "/classify",
        {"items": [{"sentence": "x" * 10_001, "actor": "us"}]},
        ["items", 0, "sentence"],
    ),
    "unknown actor": (
        "/classify",
        {"items": [{"sentence": "Mars spoke.", "actor": "mars"}]},
        ["items", 0, "actor"],
    ),
    "missing actor": (
        "/classify",
        {"items": [{"sentence": "Japan spoke."}]},
        ["items", 0, "actor"],
    ),
    "misspelt key": ("/classify", {"items": [{**ITEM, "actr": "us"}]}, ["items", 0, "actr"]),
    "sentence not a string": (
        "/classify",
        {"items": [{"sentence": 42, "actor": "us"}]},
        ["items", 0, "sentence"],
    ),
    "items not a list": ("/classify", {"items": ITEM}, ["items"]),
    "no items field": ("/classify", {"sentences": [ITEM]}, ["items"]),
    "empty text": ("/score", {"text": ""}, ["text"]),
    "blank text": ("/score", {"text": "   \n "}, ["text"]),
    "text too long": ("/score", {"text": "Japan. " * 15_000}, ["text"]),
    "text not a string": ("/score", {"text": ["Japan spoke."]}, ["text"]),
    "unknown filter actor": (
        "/score",
        {"text": "Japan spoke.", "actors": ["japan", "korea"]},
        ["actors", 1],
    ),
    "empty filter": ("/score", {"text": "Japan spoke.", "actors": []}, ["actors"]),
    "repeated filter actor": (
        "/score",
        {"text": "Japan spoke.", "actors": ["us", "us"]},
        ["actors"],
    ),
    "filter not a list": ("/score", {"text": "Japan spoke.", "actors": {}}, ["actors"]),
    "misspelt top-level key": (
        "/score",
        {"text": "China spoke.", "actor": ["china"]},
        ["actor"],
    ),
    "unknown top-level key": ("/classify", {"items": [ITEM], "verbose": True}, ["verbose"]),
    "ideographic-space sentence": (
        "/classify",
        {"items": [{"sentence": "\u3000\u00a0", "actor": "japan"}]},
        ["items", 0, "sentence"],
    ),
    "metadata with a field": ("/metadata", {"verbose": True}, ["verbose"]),
    "metadata not an object": ("/metadata", [None, None], []),
}


@pytest.mark.parametrize(("path", "body", "loc"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_is_a_400_naming_the_field(
    server: str, documented, path: str, body: dict, loc: list
) -> None:
    """Each body is a 400 whose body is the documented one (fuzz finding: every 400 broke
    the published schema, which typed `detail` as a string)."""
    response = documented(post(server + path, body))

    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert loc in [error["loc"] for error in detail]
    assert all(error["msg"] for error in detail)


@pytest.mark.parametrize("raw", [b'{"items": [', b"not json", b'["a list"]', b"\xff\xfe{}"])
def test_body_that_is_not_a_json_object_is_a_400(server: str, documented, raw: bytes) -> None:
    response = requests.post(
        f"{server}/classify",
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert documented(response).status_code == 400
    assert response.json()["detail"][0]["type"] in {"json_invalid", "model_type"}


def test_no_body_is_a_400_naming_the_required_field_except_for_metadata(
    server: str, documented
) -> None:
    """Fuzz finding: a request with no body was valid by the schema and got 400; now the
    schema requires the body of /classify and /score, and /metadata takes none."""
    for path, field in (("/classify", "items"), ("/score", "text")):
        response = documented(requests.post(server + path, timeout=TIMEOUT))
        assert response.status_code == 400
        assert [(e["type"], e["loc"]) for e in response.json()["detail"]] == [("missing", [field])]
    assert documented(requests.post(f"{server}/metadata", timeout=TIMEOUT)).status_code == 200


def test_actors_null_scores_every_actor_as_documented(server: str, documented) -> None:
    """Fuzz finding: `"actors": null` was served although the schema forbade it; the
    schema now allows it, with the meaning of an omitted filter."""
    text = "Beijing summoned Japan's ambassador. The US urged calm."
    omitted = documented(post(f"{server}/score", {"text": text}))
    null = documented(post(f"{server}/score", {"text": text, "actors": None}))

    assert null.status_code == omitted.status_code == 200
    assert null.json() == omitted.json()
    assert [s["actor"] for s in null.json()["summary"]] == ["japan", "china", "us"]


@pytest.mark.parametrize("path", ["/classify", "/score", "/metadata"])
@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",  # fuzz finding: no boundary -> 500
        "text/plain",
        "application/vnd.bentoml+pickle",  # BentoML's own 415 had a list as its body
        None,  # a body without a Content-Type was read as JSON
    ],
)
def test_a_body_not_declared_json_is_a_415(
    server: str, documented, path: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = b'{"items": [{"sentence": "Japan spoke.", "actor": "japan"}], "text": "Japan."}'
    response = requests.post(server + path, data=body, headers=headers, timeout=TIMEOUT)

    assert documented(response).status_code == 415
    assert response.json()["detail"][0]["loc"] == ["header", "content-type"]


def test_a_body_over_the_byte_limit_is_a_413_before_parsing(server: str, documented) -> None:
    over = b" " * (MAX_BODY_BYTES + 1)  # whitespace: valid JSON padding, were it parsed
    declared = requests.post(
        f"{server}/score",
        data=over,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    chunks = (over[i : i + 2**20] for i in range(0, len(over), 2**20))
    streamed = requests.post(  # a generator body goes chunked: no Content-Length
        f"{server}/score",
        data=chunks,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    for response in (declared, streamed):
        assert documented(response).status_code == 413
        assert response.json()["detail"][0]["loc"] == ["body"]
    assert post(f"{server}/score", {"text": "Japan spoke."}).status_code == 200


def test_long_inputs_are_served_truncated_never_refused(server: str, documented) -> None:
    """Sentences far over the model's max tokens, in the largest /classify request and in
    a /score text at the character limit: 200, each flagged truncated."""
    sentence = ("Taiwan restated that the strait must remain peaceful and stable. " * 160)[
        :MAX_SENTENCE_CHARS
    ]
    items = [{"sentence": sentence, "actor": ACTORS[i % 5]} for i in range(MAX_ITEMS)]
    classify = documented(post(f"{server}/classify", {"items": items}))
    assert classify.status_code == 200
    assert [r["truncated"] for r in classify.json()] == [True] * MAX_ITEMS

    long = "Taiwan " + "restated that the strait must remain peaceful and stable " * 90
    lines = [long] + [f"Officials met again on day {day} and said little." for day in range(3000)]
    text = "\n".join(lines)[:MAX_TEXT_CHARS]
    assert len(text) == MAX_TEXT_CHARS
    score = documented(post(f"{server}/score", {"text": text}))
    assert score.status_code == 200
    first = score.json()["sentences"][0]
    assert first["text"] == long.strip() and first["predictions"][0]["truncated"] is True
    assert score.json()["summary"] == [
        {**score.json()["summary"][0], "actor": "taiwan", "sentence_count": 1, "truncated_count": 1}
    ]


def test_startup_fails_clearly_when_the_store_is_empty(serve_until_exit, tmp_path: Path) -> None:
    returncode, output = serve_until_exit(tmp_path / "empty-bentoml-home")

    assert returncode != 0
    assert "no model 'stance-classifier:latest' in the BentoML store" in output
    assert str(tmp_path / "empty-bentoml-home" / "models") in output
    assert "run `dvc repro` first" in output


def test_seed_set_through_classify_gives_the_evaluate_stage_metrics(
    server: str, tiny_onnx_dir: Path
) -> None:
    # The evaluate stage's own code path and metrics, on the same model the server loaded.
    seeds = Path(__file__).resolve().parents[2] / "seeds" / "labels.jsonl"
    rows = load_labelled(seeds)
    batch = 32  # sequential requests of one evaluate batch each: identical padding
    served = []
    for begin in range(0, len(rows), batch):
        chunk = rows[begin : begin + batch]
        items = [{"sentence": r.sentence, "actor": r.actor} for r in chunk]
        response = post(f"{server}/classify", {"items": items})
        assert response.status_code == 200
        served += response.json()
    evaluated = predict_rows(tiny_onnx_dir, rows, batch)

    gold, actors = [r.stance for r in rows], [r.actor for r in rows]
    assert [s["stance"] for s in served] == [p.stance for p in evaluated]
    for s, p in zip(served, evaluated, strict=True):
        assert s["scores"] == pytest.approx(p.scores, abs=1e-5)
    assert stance_metrics(gold, [s["stance"] for s in served], actors) == stance_metrics(
        gold, [p.stance for p in evaluated], actors
    )
