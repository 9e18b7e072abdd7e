"""The BentoML store hand-off: what training saves is what serving loads."""

import json
import re
import shutil
from pathlib import Path

import pytest

from serving.store import ModelNotInStoreError, load_model, resolve_tag, save_model


def test_save_then_load_round_trips_files_and_metadata(
    bentoml_home: Path, tiny_model_dir: Path, model_name: str, model_metadata: dict
) -> None:
    tag = save_model(tiny_model_dir, model_name, model_metadata)

    assert re.fullmatch(rf"{model_name}:[a-z0-9]+", tag)
    model_dir, metadata = load_model(tag)
    assert metadata == model_metadata
    assert model_dir.is_relative_to(bentoml_home / "models")
    for source in tiny_model_dir.iterdir():
        assert (model_dir / source.name).read_bytes() == source.read_bytes()
    assert json.loads((model_dir / "config.json").read_text())["id2label"]["0"] == "supportive"


def test_latest_resolves_to_the_newest_save(
    bentoml_home: Path, tiny_model_dir: Path, model_name: str, model_metadata: dict
) -> None:
    first = save_model(tiny_model_dir, model_name, {**model_metadata, "registry_version": "1"})
    second = save_model(tiny_model_dir, model_name, {**model_metadata, "registry_version": "2"})

    assert first != second
    assert resolve_tag(f"{model_name}:latest") == second
    assert load_model(f"{model_name}:latest")[1]["registry_version"] == "2"
    assert load_model(first)[1]["registry_version"] == "1"


def test_missing_model_names_the_tag_the_store_and_the_fix(
    bentoml_home: Path, model_name: str
) -> None:
    with pytest.raises(ModelNotInStoreError) as raised:
        load_model(f"{model_name}:latest")

    message = str(raised.value)
    assert f"no model '{model_name}:latest'" in message
    assert str(bentoml_home / "models") in message
    assert "run `dvc repro` first" in message


def test_save_refuses_a_directory_without_inference_config(
    bentoml_home: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    model_name: str,
    model_metadata: dict,
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "inference.json").unlink()

    with pytest.raises(FileNotFoundError, match="inference.json"):
        save_model(broken, model_name, model_metadata)
    with pytest.raises(ModelNotInStoreError):
        load_model(f"{model_name}:latest")
