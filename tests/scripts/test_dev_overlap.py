"""scripts/dev_overlap.py on hand-made dev and corpus files of our own sentences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DEV = [
    "Beijing recalled its consul from Osaka on Tuesday after a week of protests.",
    "Tokyo again refused to withdraw the premier's answer to the opposition leader.",
]


@pytest.fixture(scope="module")
def dev_overlap(load_script):
    return load_script("dev_overlap")


def write_rows(path: Path, sentences: list[str]) -> Path:
    rows = [
        {"id": f"x-d001-s{i:02d}-japan", "doc": "x-d001", "sentence": s, "actor": "japan",
         "stance": "neutral", "style": "wire", "dispute": "takaichi_2025"}
        for i, s in enumerate(sentences, 1)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def dev_file(tmp_path):
    path = tmp_path / "dev.jsonl"
    rows = [  # the dev file's layout: extra fields the script must ignore
        {"id": f"D{i}-japan", "doc": f"https://example.invalid/{i}", "source": "Wire",
         "sentence": s, "actor": "japan", "stance": "neutral", "note": ""}
        for i, s in enumerate(DEV)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_sentence_close_to_a_dev_sentence_is_listed_and_fails(
    dev_overlap, dev_file, tmp_path, capsys
):
    corpus = write_rows(
        tmp_path / "part_x.jsonl",
        [
            "Beijing recalled its consul from Osaka on Tuesday, after a week of protests.",
            "Seoul said it would host the trade ministers in March.",
        ],
    )
    assert dev_overlap.main(["--dev", str(dev_file), str(corpus)]) == 1
    out = capsys.readouterr().out
    assert "jaccard" in out and "recalled its consul" in out
    assert "Seoul" not in out.split("corpus sentences")[0]
    assert "2 corpus sentences against 2 dev sentences: 1 with Jaccard" in out


def test_a_shared_run_of_words_is_listed_in_a_new_sentence(dev_overlap, dev_file, tmp_path, capsys):
    folder = tmp_path / "corpus"
    folder.mkdir()
    new = "Officials said Tokyo again refused to withdraw the premier's answer, then left."
    write_rows(folder / "part_y.jsonl", [new])
    assert dev_overlap.main(["--dev", str(dev_file), "--jaccard", "0.9", str(folder)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("words") and "[shared: " in out and "refused to withdraw" in out
    assert "1 corpus sentences against 2 dev sentences: 0 with Jaccard >= 0.9, 1 sharing" in out


def test_a_clean_corpus_passes(dev_overlap, dev_file, tmp_path):
    corpus = write_rows(tmp_path / "part_z.jsonl", ["Taipei opened a trade office in Fukuoka."])
    assert dev_overlap.main(["--dev", str(dev_file), str(corpus)]) == 0


def test_a_broken_row_names_file_and_line(dev_overlap, dev_file, tmp_path):
    corpus = tmp_path / "part_bad.jsonl"
    corpus.write_text('{"sentence": "fine"}\n{"id": 1}\n', encoding="utf-8")
    with pytest.raises(SystemExit, match="part_bad.jsonl:2"):
        dev_overlap.main(["--dev", str(dev_file), str(corpus)])
