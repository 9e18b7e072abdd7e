"""--model: the registry's champion by default, other aliases and versions, URIs, directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch.cli import main
from batch.models import ModelError, find_model_dir, resolve_model
from batch.outputs import read_frame


@pytest.mark.parametrize("spec", [None, "champion", "1", "models:/stance-classifier@champion",
                                  "models:/stance-classifier/1"])  # fmt: skip
def test_registry_specs_resolve_to_the_registered_version(spec, registry, tmp_path: Path):
    choice = resolve_model(spec, registry.name, tmp_path)

    assert (choice.info.name, choice.info.version, choice.info.run_id) == (
        registry.name, registry.version, registry.run_id,
    )  # fmt: skip
    assert choice.pyfunc_uri == f"models:/{registry.name}/{registry.version}"  # pinned
    assert (choice.model_dir / "inference.json").is_file()


def test_unknown_alias_or_version_names_the_store(registry, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no alias 'challenger' of registered model "
                       r"'stance-classifier' in the tracking store sqlite:///"):  # fmt: skip
        resolve_model("challenger", registry.name, tmp_path)
    with pytest.raises(ModelError, match="no version 7 of registered model"):
        resolve_model("7", registry.name, tmp_path)


def test_model_directories(tiny_model_dir: Path, tmp_path: Path) -> None:
    choice = resolve_model(str(tiny_model_dir), "unused", tmp_path)
    assert choice.model_dir == tiny_model_dir.resolve() and choice.pyfunc_uri is None
    assert (choice.info.version, choice.info.run_id) == (None, None)

    (tmp_path / "mlflow_run.json").write_text(json.dumps({"run_id": "r1", "experiment_id": "1"}))
    import shutil

    trained = shutil.copytree(tiny_model_dir, tmp_path / "stance")
    shutil.copy(tmp_path / "mlflow_run.json", trained / "mlflow_run.json")
    assert resolve_model(str(trained), "unused", tmp_path).info.run_id == "r1"

    with pytest.raises(ModelError, match="neither a stance model directory"):
        resolve_model(str(tmp_path), "unused", tmp_path)
    with pytest.raises(ModelError, match="not a directory, a registry version or alias"):
        resolve_model("no/such/dir", "unused", tmp_path)


def test_find_model_dir_in_a_logged_pyfunc(tmp_path: Path) -> None:
    (tmp_path / "artifacts" / "stance").mkdir(parents=True)
    (tmp_path / "artifacts" / "stance" / "inference.json").write_text("{}")
    assert find_model_dir(tmp_path) == tmp_path / "artifacts" / "stance"
    with pytest.raises(ModelError, match="expected one model directory"):
        find_model_dir(tmp_path / "artifacts")


def test_cli_scores_with_the_champion_and_records_its_lineage(
    registry, tmp_path: Path, corpus
) -> None:
    source = corpus.write_jsonl(tmp_path / "in.jsonl", corpus.articles)
    out = tmp_path / "scored.jsonl"
    argv = ["score", str(source), "--out", str(out), "--registered-model", registry.name]

    assert main(argv) == 0

    frame = read_frame(out)
    lineage = zip(frame.model_name, frame.model_version, frame.mlflow_run_id, strict=True)
    assert set(lineage) == {(registry.name, registry.version, registry.run_id)}
