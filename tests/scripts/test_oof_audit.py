"""scripts/oof_audit.py's fold split and candidate list (the audit itself trains models)."""

from __future__ import annotations

import pytest

from pipeline.records import LabelledRow


@pytest.fixture(scope="module")
def audit(load_script):
    return load_script("oof_audit")


ROWS = [
    LabelledRow(id=f"p{page}-s{s}-japan", doc=f"p{page}", sentence=f"Sentence {s} of page {page}.",
                actor="japan", stance="neutral")
    for page in range(12)
    for s in range(3)
]  # fmt: skip


def test_every_row_lands_in_one_fold_and_pages_stay_whole(audit) -> None:
    groups = audit.split_folds(ROWS, 3)

    assert sorted(row.id for group in groups for row in group) == sorted(r.id for r in ROWS)
    for fold, group in enumerate(groups):
        assert group, "every fold holds a page"
        others = {row.doc for i, g in enumerate(groups) if i != fold for row in g}
        assert not {row.doc for row in group} & others


def test_the_split_is_stable(audit) -> None:
    assert audit.split_folds(ROWS, 2) == audit.split_folds(list(ROWS), 2)
    assert audit.fold_of("ca-d001", 2) == audit.fold_of("ca-d001", 2)


def test_too_many_folds_or_too_few_are_refused(audit) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        audit.split_folds(ROWS, 1)
    with pytest.raises(ValueError, match="hold no page"):
        audit.split_folds(ROWS[:3], 2)  # one page cannot fill two folds


def test_candidates_are_the_confident_disagreements_surest_first(audit) -> None:
    misclassified = [
        {"id": "a", "actor": "china", "sentence": "S1", "gold": "neutral",
         "predicted": "hostile", "confidence": "0.81"},
        {"id": "b", "actor": "japan", "sentence": "S2", "gold": "hedging",
         "predicted": "supportive", "confidence": "0.79"},
        {"id": "c", "actor": "us", "sentence": "S3", "gold": "neutral",
         "predicted": "hedging", "confidence": "0.97"},
    ]  # fmt: skip

    found = audit.candidates(misclassified, 0.8, fold=1)

    assert [row["id"] for row in found] == ["c", "a"]
    assert found[1] == {
        "id": "a", "actor": "china", "sentence": "S1", "corpus_label": "neutral",
        "model_label": "hostile", "model_confidence": 0.81, "fold": 1,
    }  # fmt: skip
