"""Document scoring and the per-actor summary rule (serving/scoring.py)."""

from pathlib import Path

import pytest

from pipeline.inference import Prediction, StancePredictor
from pipeline.labels import STANCES
from serving.scoring import dominant_stance, score_document, summarise

DOCUMENT = (
    "Tokyo lodged a protest on Friday.\n"
    "China summoned Japan's ambassador, and Washington urged calm.\n"
    "http://example.com/story\n"
    "The weather was mild."
)


def scores(**values: float) -> dict[str, float]:
    return {label: values.get(label, 0.0) for label in STANCES}


class FakePredictor:
    """Deterministic stand-in: hostile for China, supportive otherwise; records calls."""

    labels = list(STANCES)

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    def predict(self, rows: list[tuple[str, str]], batch_size: int = 32) -> list[Prediction]:
        self.calls.append(list(rows))
        stances = [("hostile" if actor == "china" else "supportive") for _, actor in rows]
        return [
            Prediction(actor, stance, scores(**{stance: 1.0}), False)
            for (_, actor), stance in zip(rows, stances, strict=True)
        ]


def test_sentences_carry_offsets_into_the_document_and_detected_actors() -> None:
    predictor = FakePredictor()
    sentences, summary = score_document(predictor, DOCUMENT, None, batch_size=8)

    assert [s.text for s in sentences] == [
        "Tokyo lodged a protest on Friday.",
        "China summoned Japan's ambassador, and Washington urged calm.",
        "The weather was mild.",
    ]  # the URL line is page furniture, dropped by pipeline.segment
    for sentence in sentences:
        assert DOCUMENT[sentence.start : sentence.end] == sentence.text
    assert [[p.actor for p in s.predictions] for s in sentences] == [
        ["japan"],
        ["japan", "china", "us"],
        [],  # kept, with nothing to score
    ]
    assert len(predictor.calls) == 1  # the whole document in one predict call
    assert [a.actor for a in summary] == ["japan", "china", "us"]


def test_actor_filter_scores_only_requested_actors_where_detected() -> None:
    predictor = FakePredictor()
    sentences, summary = score_document(predictor, DOCUMENT, ["china", "taiwan"], batch_size=8)

    assert predictor.calls == [[(sentences[1].text, "china")]]
    assert [[p.actor for p in s.predictions] for s in sentences] == [[], ["china"], []]
    china, taiwan = summary
    assert (china.actor, china.sentence_count, china.dominant_stance) == ("china", 1, "hostile")
    # Asked for but never mentioned: present in the summary, explicitly empty.
    assert (taiwan.actor, taiwan.sentence_count) == ("taiwan", 0)
    assert taiwan.mean_scores is None and taiwan.dominant_stance is None


def test_summary_is_the_mean_of_scores_and_argmax_of_the_mean() -> None:
    predictions = [
        Prediction("us", "hostile", scores(hostile=0.6, hedging=0.4), False),
        Prediction("us", "hedging", scores(hostile=0.1, hedging=0.9), True),
        Prediction("us", "hostile", scores(hostile=0.5, hedging=0.2, neutral=0.3), False),
    ]
    (summary,) = summarise(predictions, STANCES, None)

    assert summary.sentence_count == 3 and summary.truncated_count == 1
    assert summary.mean_scores.model_dump() == pytest.approx(
        scores(hostile=1.2 / 3, hedging=1.5 / 3, neutral=0.1)
    )
    # Two of three sentences are hostile, but the rule is argmax of mean scores.
    assert summary.dominant_stance == "hedging"


def test_dominant_stance_tie_goes_to_the_earlier_label() -> None:
    assert dominant_stance(scores(hostile=0.5, neutral=0.5), STANCES) == "hostile"
    uniform = dict.fromkeys(STANCES, 0.25)
    assert dominant_stance(uniform, STANCES) == "supportive"


def test_real_predictor_scores_sum_to_one_and_flag_truncation(tiny_model_dir: Path) -> None:
    predictor = StancePredictor(tiny_model_dir)
    long_sentence = "Japan said " + "that the talks would continue " * 40 + "next week."
    text = f"China protested.\n{long_sentence}"

    sentences, summary = score_document(predictor, text, None, batch_size=4)

    short, long = (s.predictions for s in sentences)
    assert [p.actor for p in short] == ["china"] and [p.actor for p in long] == ["japan"]
    assert short[0].truncated is False and long[0].truncated is True
    for prediction in short + long:
        scores = prediction.scores.model_dump()
        assert set(scores) == set(STANCES)
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.stance == max(scores, key=scores.get)
    japan = next(s for s in summary if s.actor == "japan")
    assert japan.truncated_count == 1
    assert sum(japan.mean_scores.model_dump().values()) == pytest.approx(1.0, abs=1e-5)


def test_document_without_content_sentences_scores_nothing() -> None:
    predictor = FakePredictor()
    sentences, summary = score_document(predictor, "https://example.com/story\n", None, 8)

    assert sentences == [] and summary == []
    assert predictor.calls == [[]]
