"""`--engine spark` on local[2] against the single-process CLI, with the registered tiny model.

Spark scores through ``mlflow.pyfunc.spark_udf`` over the registry version, the CLI
through the predictor in-process; both must give the same rows, labels and scores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from batch.cli import main
from batch.outputs import COLUMNS, read_frame

pytest.importorskip("pyspark", reason="the Spark engine is the optional extra [spark]")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17"),
]

KEY = ["doc_id", "sentence_index", "actor"]
SCORES = ["score_supportive", "score_hostile", "score_hedging", "score_neutral"]
SENTENCES = [
    "Tokyo said its position on a Taiwan contingency had not changed.",
    "Beijing summoned the Japanese ambassador and demanded a retraction.",
    "Washington urged both capitals to keep talking.",
    "Taipei thanked Japanese lawmakers for their support.",
    "Chinese coast guard ships sailed near the disputed islands again.",
    "Seoul declined to take sides in the row between Japan and China.",
    "The State Department said the alliance treaty covered the islands.",
    "Japan's cabinet asked ministries to prepare for a long dispute with China.",
    "Beijing's foreign ministry called the remarks a grave provocation against China, "
    "and warned Tokyo that it would bear all consequences of its choice.",
    "The ferry timetable for the winter season was published on Monday.",
]


def articles(count: int) -> list[dict]:
    """``count`` dated articles of 2 to 5 of our sentences each."""
    return [
        {
            "id": f"s{i:02d}",
            "date": f"2025-11-{1 + i % 20:02d}",
            "source": ["Example Wire", "Harbour Times"][i % 2],
            "text": "\n".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(2 + i % 4)),
        }
        for i in range(count)
    ]


def test_spark_gives_the_cli_rows_labels_and_scores(registry, tmp_path: Path, corpus) -> None:
    jsonl = corpus.write_jsonl(tmp_path / "articles.jsonl", articles(14))
    folder = corpus.write_folder(tmp_path / "txt", corpus.articles)
    common = [str(jsonl), str(folder), "--registered-model", registry.name, "--chunk-rows", "8"]
    cli_out, spark_out = tmp_path / "cli.parquet", tmp_path / "spark.parquet"

    assert main(["score", *common, "--out", str(cli_out)]) == 0
    argv = ["score", *common, "--out", str(spark_out), "--engine", "spark"]
    assert main([*argv, "--spark-master", "local[2]"]) == 0

    cli = read_frame(cli_out).sort_values(KEY).reset_index(drop=True)
    spark = read_frame(spark_out).sort_values(KEY).reset_index(drop=True)
    assert len(cli) > 40 and list(spark.columns) == list(COLUMNS)
    assert spark[KEY].equals(cli[KEY])  # row for row
    same = [c for c in COLUMNS if c not in SCORES]
    assert spark[same].equals(cli[same])  # labels, offsets, dates, model lineage
    assert (spark[SCORES] - cli[SCORES]).abs().max().max() <= 1e-6
    assert set(spark.model_version) == {registry.version}

    import pyarrow.dataset as ds

    def schema(path: Path) -> list[tuple[str, str]]:
        return [(f.name, str(f.type)) for f in ds.dataset(path).schema]

    assert schema(spark_out) == schema(cli_out)


def test_spark_resumes_and_writes_rejects(registry, tmp_path: Path, corpus) -> None:
    first = corpus.write_jsonl(tmp_path / "first.jsonl", articles(4))
    second = tmp_path / "second.jsonl"
    second.write_text(
        json.dumps({"id": "late", "date": "2025-12-01", "text": SENTENCES[1]}) + "\n"
        + json.dumps({"id": "undated", "text": SENTENCES[2]}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "scored.parquet"
    argv = ["--out", str(out), "--registered-model", registry.name, "--engine", "spark",
            "--spark-master", "local[2]"]  # fmt: skip

    assert main(["score", str(first), *argv]) == 0
    assert main(["score", str(first), str(second), *argv]) == 0

    frame = read_frame(out)
    assert sorted(set(frame.doc_id)) == ["late", "s00", "s01", "s02", "s03"]
    assert not frame.duplicated(KEY).any()
    rejects = (tmp_path / "scored.rejects.txt").read_text().splitlines()
    assert rejects == [f"{second}:2: date: missing (give YYYY-MM-DD in the record, or --date)"]
