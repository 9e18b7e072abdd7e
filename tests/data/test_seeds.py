"""The seed test set: files match the shared originals, labels match the segmenter."""

from collections import Counter
from pathlib import Path

import pytest

from pipeline.records import load_labelled
from pipeline.segment import segment_texts

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
SHARED_SEEDS = ROOT.parent / "shared" / "seeds"
LABELS = SEEDS / "labels.jsonl"


@pytest.fixture(scope="module")
def rows():
    return load_labelled(LABELS)


@pytest.mark.skipif(not SHARED_SEEDS.is_dir(), reason="no ../shared/seeds beside the clone")
def test_seed_files_are_byte_identical_to_the_shared_originals():
    ours = sorted(p.name for p in SEEDS.glob("*.txt"))
    assert ours == sorted(p.name for p in SHARED_SEEDS.glob("*.txt"))
    for name in ours:
        assert (SEEDS / name).read_bytes() == (SHARED_SEEDS / name).read_bytes(), name


def test_every_label_row_loads_and_names_a_seed_file(rows):
    assert rows
    assert {row.doc for row in rows} == {p.name for p in SEEDS.glob("*.txt")}


def test_every_sentence_is_produced_by_the_segmenter(rows):
    docs = {row.doc for row in rows}
    sentences = {doc: set(segment_texts((SEEDS / doc).read_text(encoding="utf-8"))) for doc in docs}
    missing = [(row.doc, row.sentence) for row in rows if row.sentence not in sentences[row.doc]]
    assert missing == []


def test_each_sentence_actor_pair_is_labelled_once(rows):
    repeated = [key for key, n in Counter((r.sentence, r.actor) for r in rows).items() if n > 1]
    assert repeated == []
