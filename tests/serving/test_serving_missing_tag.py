"""Fault: the BentoML store lacks the tag the service is asked for.

The store holds another version of the model; asking for one it does not hold fails
at start-up with the tag, the store's folder and the fix in the message, and nothing
else is loaded in its place.
"""

from pathlib import Path

import pytest

from serving.service import TAG_ENV, StanceService
from serving.store import ModelNotInStoreError, load_model, resolve_tag, save_model


def test_a_version_not_in_the_store_is_named_while_another_is_there(
    bentoml_home: Path, tiny_model_dir: Path, model_name: str, model_metadata: dict
) -> None:
    stored = save_model(tiny_model_dir, model_name, model_metadata)
    missing = f"{model_name}:notinthestore1"
    assert stored != missing

    for lookup in (resolve_tag, load_model):
        with pytest.raises(ModelNotInStoreError) as raised:
            lookup(missing)
        assert str(raised.value) == (
            f"no model '{missing}' in the BentoML store at {bentoml_home / 'models'}: "
            "run `dvc repro` first"
        )
    assert resolve_tag(f"{model_name}:latest") == stored  # the stored version still resolves


def test_service_start_up_names_the_missing_tag(
    bentoml_home: Path,
    tiny_model_dir: Path,
    model_name: str,
    model_metadata: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save_model(tiny_model_dir, model_name, model_metadata)
    missing = f"{model_name}:notinthestore2"
    monkeypatch.setenv(TAG_ENV, missing)

    with pytest.raises(ModelNotInStoreError, match=rf"no model '{missing}' in the BentoML store"):
        StanceService.inner.check_model_in_store()  # `bentoml serve` runs it before workers
    with pytest.raises(ModelNotInStoreError, match=rf"no model '{missing}'"):
        StanceService()
