"""`stance-watch score` end to end on a tiny real model: formats, resume, rejects, --strict."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path

import pytest

from batch.cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_STRICT, main
from batch.outputs import COLUMNS, PROGRESS_SUFFIX, read_frame, rejects_path
from pipeline.documents import candidates, score_document
from pipeline.inference import StancePredictor
from pipeline.labels import STANCES

REPO_ROOT = Path(__file__).resolve().parents[2]
SCORES = [f"score_{s}" for s in STANCES]
KEY = ["doc_id", "sentence_index", "actor"]


def score(*args: object) -> int:
    return main(["score", *map(str, args)])


@pytest.fixture
def jsonl_input(tmp_path: Path, corpus) -> Path:
    return corpus.write_jsonl(tmp_path / "articles.jsonl", corpus.articles)


@pytest.mark.parametrize("argv", [[], ["score"], ["timeseries"]])
def test_help_on_every_command(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: stance-watch")
    if argv == ["score"]:
        assert "--out" in out and "--model" in out and "--strict" in out and "--engine" in out


def test_console_script_is_declared() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["stance-watch"].split(":")
    import importlib

    assert callable(getattr(importlib.import_module(module), function))


def test_rows_follow_the_shared_document_path(tmp_path: Path, corpus, jsonl_input, tiny_model_dir):
    out = tmp_path / "scored.jsonl"
    assert score(jsonl_input, "--out", out, "--model", tiny_model_dir) == 0

    frame = read_frame(out)
    assert list(frame.columns) == list(COLUMNS)
    texts = {a["id"]: a["text"] for a in corpus.articles}
    # One row per (document, sentence, actor) that pipeline.documents selects, in order.
    expected = [
        (doc_id, index, actor)
        for doc_id, text in texts.items()
        for index, actor in candidates(text).rows
    ]
    assert list(frame[KEY].itertuples(index=False, name=None)) == expected
    for row in frame.itertuples(index=False):
        assert texts[row.doc_id][row.start : row.end] == row.sentence
        scores = {s: getattr(row, f"score_{s}") for s in STANCES}
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert row.stance == max(scores, key=scores.get)
    assert set(frame.model_name) == {str(tiny_model_dir.resolve())}
    assert frame.model_version.isna().all() and frame.mlflow_run_id.isna().all()
    assert set(frame.source.dropna()) == {"Example Wire", "Harbour Times"}
    assert frame[frame.doc_id == "a3"].empty  # no actor named: no rows, but not an error

    # The service's /score path gives the same sentences, actors and stances.
    predictor = StancePredictor(tiny_model_dir)
    served = score_document(predictor, texts["a2"])
    ours = frame[frame.doc_id == "a2"]
    pairs = [(s.index, s.start, s.end, p.actor, p.stance) for s in served for p in s.predictions]
    columns = ["sentence_index", "start", "end", "actor", "stance"]
    assert list(ours[columns].itertuples(index=False, name=None)) == pairs
    served_scores = [p.scores[s] for x in served for p in x.predictions for s in STANCES]
    assert ours[SCORES].to_numpy().ravel().tolist() == pytest.approx(served_scores, abs=1e-5)


def test_jsonl_csv_and_folder_inputs_and_outputs_agree(tmp_path: Path, corpus, tiny_model_dir):
    runs = {
        "jsonl": (corpus.write_jsonl(tmp_path / "in.jsonl", corpus.articles), "out.jsonl"),
        "csv": (corpus.write_csv(tmp_path / "in.csv", corpus.articles), "out.csv"),
        "folder": (corpus.write_folder(tmp_path / "txt", corpus.articles), "out.parquet"),
    }
    frames = {}
    for name, (source, out) in runs.items():
        assert score(source, "--out", tmp_path / out, "--model", tiny_model_dir) == 0
        frames[name] = read_frame(tmp_path / out)

    reference = frames["jsonl"]
    assert len(reference) > 10
    for name, frame in frames.items():
        assert list(frame.columns) == list(COLUMNS), name
        doc_ids = frame.doc_id.str.replace(r"^\d{4}-\d{2}-\d{2}_", "", regex=True)
        assert doc_ids.tolist() == reference.doc_id.tolist(), name
        same = ["date", "sentence_index", "start", "end", "sentence", "actor", "stance",
                *SCORES, "truncated"]  # fmt: skip
        assert frame[same].equals(reference[same]), name  # same rows, same floats


def predict_interrupted_once(monkeypatch: pytest.MonkeyPatch, at_call: int) -> None:
    """StancePredictor.predict raises KeyboardInterrupt once, on call ``at_call``."""
    original = StancePredictor.predict
    calls = {"n": 0}

    def predict(self, rows, batch_size=32):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        return original(self, rows, batch_size)

    monkeypatch.setattr(StancePredictor, "predict", predict)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_resume_after_an_interrupted_run(
    suffix: str, tmp_path: Path, jsonl_input: Path, tiny_model_dir: Path, monkeypatch, caplog
) -> None:
    # One row per predict call: floats do not depend on where a run starts.
    common = ["--model", tiny_model_dir, "--chunk-rows", 1]
    reference = tmp_path / f"reference{suffix}"
    assert score(jsonl_input, "--out", reference, *common) == 0
    expected = read_frame(reference)

    out = tmp_path / f"scored{suffix}"
    with monkeypatch.context() as patch:
        predict_interrupted_once(patch, at_call=5)
        assert score(jsonl_input, "--out", out, *common) == EXIT_INTERRUPTED

    partial = read_frame(out)  # readable, and holds whole documents only
    assert 0 < len(partial) < len(expected)
    done = set(partial.doc_id)
    assert partial.equals(expected[expected.doc_id.isin(done)].reset_index(drop=True))
    if suffix != ".parquet":
        assert out.with_name(out.name + PROGRESS_SUFFIX).exists()
        with open(out, "ab") as handle:  # a commit torn by a kill mid-write
            handle.write(b'{"doc_id": "a4", "date": "2025-1')

    caplog.set_level(logging.INFO)
    assert score(jsonl_input, "--out", out, *common) == 0
    assert f"skipped {len(done)} already in OUT" in caplog.text
    assert read_frame(out).equals(expected)
    assert not out.with_name(out.name + PROGRESS_SUFFIX).exists()

    caplog.clear()
    assert score(jsonl_input, "--out", out, *common) == 0  # complete: nothing to predict
    # a3 names no actor, so it has no rows to mark it done: it is read again, never scored.
    assert "0 row(s)" in caplog.text and "skipped 3 already in OUT" in caplog.text
    assert read_frame(out).equals(expected)


def test_stale_parquet_part_of_a_killed_run_is_ignored(tmp_path: Path, jsonl_input, tiny_model_dir):
    out = tmp_path / "scored.parquet"
    out.mkdir()
    (out / ".part-killed-00000.parquet.tmp").write_bytes(b"PAR1 half a part")

    assert score(jsonl_input, "--out", out, "--model", tiny_model_dir) == 0
    assert not list(out.glob(".*.tmp"))
    assert set(read_frame(out).doc_id) == {"a1", "a2", "a4"}


def test_rejects_are_reported_written_and_counted(tmp_path: Path, tiny_model_dir, caplog) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"id": "d1", "date": "2025-11-01", "text": "Tokyo protested."}) + "\n"
        + "{broken\n"
        + json.dumps({"id": "d2", "date": "yesterday", "text": "Beijing replied."}) + "\n"
        + json.dumps({"id": "d3", "date": "2025-11-02"}) + "\n"
        + json.dumps({"id": "d4", "date": "2025-11-02", "text": "China replied."}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "runs" / "scored.csv"
    caplog.set_level(logging.INFO)

    assert score(path, "--out", out, "--model", tiny_model_dir) == 0

    assert rejects_path(out) == tmp_path / "runs" / "scored.rejects.txt"
    assert rejects_path(out).read_text().splitlines() == [
        f"{path}:2: not valid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{path}:3: date: cannot parse 'yesterday' (expected YYYY-MM-DD)",
        f"{path}:4: text: missing",
    ]
    assert "rejected 3" in caplog.text
    assert sorted(set(read_frame(out).doc_id)) == ["d1", "d4"]


def test_strict_stops_at_the_first_reject(tmp_path: Path, tiny_model_dir, capsys) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"id": "d1", "date": "2025-11-01", "text": "Tokyo protested."}) + "\n"
        + json.dumps({"id": "d2", "text": "Beijing replied."}) + "\n"
        + json.dumps({"id": "d3", "date": "2025-11-02", "text": "China replied."}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "scored.jsonl"

    assert score(path, "--out", out, "--model", tiny_model_dir, "--strict") == EXIT_STRICT

    reason = f"{path}:2: date: missing (give YYYY-MM-DD in the record, or --date)"
    assert f"stopped (--strict): {reason}" in capsys.readouterr().err
    assert rejects_path(out).read_text() == reason + "\n"
    assert set(read_frame(out).doc_id) == {"d1"}  # what came before the bad line is kept


def test_progress_lines_when_stderr_is_not_a_terminal(
    tmp_path: Path, jsonl_input, tiny_model_dir, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="batch.score")
    out = tmp_path / "scored.jsonl"
    argv = ["--model", tiny_model_dir, "--chunk-rows", 1, "--log-every", 0]

    assert score(jsonl_input, "--out", out, *argv) == 0

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
    assert lines and lines[-1].startswith("progress: 4/4 documents")
    assert "sentences/s" in lines[-1]


def test_another_model_cannot_append_to_an_output(tmp_path: Path, jsonl_input, tiny_model_dir):
    import shutil

    out = tmp_path / "scored.jsonl"
    assert score(jsonl_input, "--out", out, "--model", tiny_model_dir) == 0
    other = shutil.copytree(tiny_model_dir, tmp_path / "other-model")

    assert score(jsonl_input, "--out", out, "--model", other) == EXIT_ERROR


def test_spark_engine_needs_a_parquet_output(tmp_path: Path, jsonl_input, capsys) -> None:
    out = tmp_path / "scored.jsonl"
    assert score(jsonl_input, "--out", out, "--engine", "spark") == EXIT_ERROR
    assert "the Spark engine writes Parquet" in capsys.readouterr().err


def test_unknown_output_format_fails_before_any_work(tmp_path: Path, jsonl_input, capsys):
    assert score(jsonl_input, "--out", tmp_path / "scored.xlsx") == EXIT_ERROR
    assert "unknown format '.xlsx'" in capsys.readouterr().err
