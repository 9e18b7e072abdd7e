"""StanceService called in-process (no HTTP): model loading, endpoints, metadata."""

from pathlib import Path

import pytest

from pipeline.labels import ACTORS, STANCES
from serving.schemas import MAX_ITEMS, MAX_TEXT_CHARS, ClassifyItem
from serving.service import DEFAULT_TAG, TAG_ENV, StanceService, model_tag
from serving.store import ModelNotInStoreError, save_model


@pytest.fixture
def service(stored_tag: str, monkeypatch: pytest.MonkeyPatch) -> StanceService:
    monkeypatch.setenv(TAG_ENV, stored_tag)
    return StanceService()


def test_tag_comes_from_the_environment_with_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TAG_ENV, raising=False)
    assert model_tag() == DEFAULT_TAG == "stance-classifier:latest"
    monkeypatch.setenv(TAG_ENV, "other-model:abc123")
    assert model_tag() == "other-model:abc123"


def test_classify_keeps_order_and_returns_distributions(service: StanceService) -> None:
    items = [
        ClassifyItem(sentence="Beijing condemned the remarks.", actor="china"),
        ClassifyItem(sentence="Tokyo declined to retract them.", actor="japan"),
        ClassifyItem(sentence="Washington urged restraint.", actor="us"),
    ]
    results = service.classify(items)

    assert [r.actor for r in results] == ["china", "japan", "us"]
    for result in results:
        scores = result.scores.model_dump()
        assert list(scores) == list(STANCES)
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert result.stance == max(scores, key=scores.get)
        assert result.truncated is False


def test_classify_flags_a_sentence_longer_than_max_tokens(service: StanceService) -> None:
    long = "Japan " + "repeated its position on the strait " * 30
    short, truncated = service.classify(
        [
            ClassifyItem(sentence="Japan spoke.", actor="japan"),
            ClassifyItem(sentence=long, actor="japan"),
        ]
    )
    assert short.truncated is False and truncated.truncated is True
    assert sum(truncated.scores.model_dump().values()) == pytest.approx(1.0, abs=1e-5)


def test_score_reports_the_model_lineage(service: StanceService, model_metadata: dict) -> None:
    response = service.score("China protested. Japan did not respond.", None)

    assert [s.text for s in response.sentences] == ["China protested.", "Japan did not respond."]
    assert response.model.name == model_metadata["registry_name"]
    assert response.model.version == model_metadata["registry_version"]
    assert response.model.mlflow_run_id == model_metadata["mlflow_run_id"]
    assert response.model.tag == service.model_ref.tag


def test_metadata_describes_model_labels_and_limits(
    service: StanceService, stored_tag: str, model_metadata: dict
) -> None:
    metadata = service.metadata()

    assert metadata.model.tag == stored_tag
    assert metadata.registry_alias == "champion"
    assert metadata.training_data_md5 == model_metadata["training_data_md5"]
    assert metadata.labels == list(STANCES) and metadata.actors == list(ACTORS)
    assert metadata.limits.max_tokens == model_metadata["max_length"] == 32
    assert metadata.limits.max_items == MAX_ITEMS
    assert metadata.limits.max_text_chars == MAX_TEXT_CHARS
    assert "mean" in metadata.dominant_stance_rule


def test_model_reference_reports_backend_and_precision(
    service: StanceService,
    bentoml_home: Path,
    tiny_onnx_dir: Path,
    model_metadata: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch_ref = service.score("China protested.", None).model
    assert (torch_ref.backend, torch_ref.precision) == ("torch", "fp32")

    monkeypatch.setenv(TAG_ENV, save_model(tiny_onnx_dir, "stance-onnx", model_metadata))
    onnx_service = StanceService()
    for ref in (onnx_service.metadata().model, onnx_service.score("China protested.", None).model):
        assert (ref.backend, ref.precision) == ("onnx", "int8")
    (result,) = onnx_service.classify([ClassifyItem(sentence="China protested.", actor="china")])
    assert sum(result.scores.model_dump().values()) == pytest.approx(1.0, abs=1e-5)


def test_startup_fails_clearly_on_an_empty_store(
    bentoml_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TAG_ENV, raising=False)
    with pytest.raises(ModelNotInStoreError, match="run `dvc repro` first"):
        StanceService()
    with pytest.raises(ModelNotInStoreError, match="stance-classifier:latest"):
        StanceService.inner.check_model_in_store()


def test_startup_refuses_a_model_with_other_labels(
    bentoml_home: Path, tmp_path: Path, make_tiny_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = make_tiny_model(tmp_path / "binary", {0: "positive", 1: "negative"})
    monkeypatch.setenv(TAG_ENV, save_model(model_dir, "binary", {}))
    with pytest.raises(RuntimeError, match="expected the stances"):
        StanceService()


def test_a_stored_model_with_only_pickle_weights_is_refused(
    bentoml_home: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weights are loaded from safetensors (or ONNX) only: a pickle can run code."""
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, pickled)
    weights = load_file(pickled / "model.safetensors")
    (pickled / "model.safetensors").unlink()
    torch.save(weights, pickled / "pytorch_model.bin")
    monkeypatch.setenv(TAG_ENV, save_model(pickled, "pickled", {}))

    with pytest.raises(FileNotFoundError) as refused:
        StanceService()
    message = str(refused.value)
    assert "no model.safetensors" in message and "pytorch_model.bin" in message
    assert "never loaded" in message
