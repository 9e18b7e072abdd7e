"""bentofile.yaml: what `make bento` packs, and a Bento built from a tiny model, served.

The slow test builds a Bento in a private BentoML home from the tiny ONNX model (as the
handoff stage stores it), saves a newer model afterwards, then runs `bentoml serve` on
the Bento: it must answer /classify and report the model it packed, not the newer one.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 300
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def bentofile() -> dict:
    return yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text(encoding="utf-8"))


def requirement_name(spec: str) -> str:
    return re.split(r"[=<>!~ ;\[]", spec, maxsplit=1)[0].lower()


def test_bentofile_pins_follow_pyproject():
    """Every package the Bento installs has pyproject's pin; torch is the CPU build."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = {requirement_name(spec): spec for spec in project["project"]["dependencies"]}
    python = bentofile()["python"]
    for spec in python["packages"]:
        name = requirement_name(spec)
        if name == "torch":
            assert spec == pins["torch"] + "+cpu", "torch must be the +cpu build of the pin"
        else:
            assert spec == pins[name], name
    assert "torch" in {requirement_name(spec) for spec in python["packages"]}
    assert python["extra_index_url"] == [CPU_INDEX]
    assert python["lock_packages"] is False  # the pins are the lock; no index at build time


def test_bentofile_packs_the_model_the_service_asks_for():
    from serving.service import DEFAULT_TAG
    from serving.store import MODEL_NAME

    (model,) = bentofile()["models"]
    assert model == {"tag": f"{MODEL_NAME}:latest", "alias": DEFAULT_TAG}
    assert bentofile()["service"] == "serving.service:StanceService"


@pytest.mark.slow
def test_built_bento_serves_the_model_it_packed(
    tmp_path, store_at, tiny_onnx_dir, tiny_model_dir, model_metadata, servers
):
    import bentoml
    import requests

    from serving.store import MODEL_NAME, save_model

    home = tmp_path / "bentoml"
    with store_at(home):
        packed = save_model(tiny_onnx_dir, MODEL_NAME, model_metadata)
    env = servers.server_env(home)
    build = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", "bentofile.yaml", "--output", "tag"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (bento_tag,) = re.findall(r"__tag__:(\S+)", build.stdout)
    assert bento_tag.startswith("stance-watch:")

    with store_at(home):
        # a newer model in the store after the build: the Bento must not pick it up
        save_model(tiny_model_dir, MODEL_NAME, {**model_metadata, "registry_version": "8"})
        bento = bentoml.get(bento_tag)
        assert [str(model.tag) for model in bento.info.models] == [packed]
        bento_dir = Path(bento.path)
    requirements = (bento_dir / "env/python/requirements.txt").read_text().splitlines()
    assert "torch==2.13.0+cpu" in requirements
    assert f"--extra-index-url {CPU_INDEX}" in requirements
    assert {"pipeline", "serving"} <= {p.name for p in (bento_dir / "src").iterdir()}

    port = servers.free_port()
    command = [sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    with servers.running(command, port, env, tmp_path, tmp_path / "serve.log") as url:
        item = {"sentence": "Beijing summoned the Japanese ambassador on Friday.", "actor": "china"}
        classified = requests.post(f"{url}/classify", json={"items": [item]}, timeout=60)
        assert classified.status_code == 200, classified.text
        (answer,) = classified.json()
        assert answer["actor"] == "china"
        assert answer["stance"] == max(answer["scores"], key=answer["scores"].get)
        metadata = requests.post(f"{url}/metadata", json={}, timeout=60).json()
    assert metadata["model"]["tag"] == packed
    assert metadata["model"]["version"] == model_metadata["registry_version"]
    assert (metadata["model"]["backend"], metadata["model"]["precision"]) == ("onnx", "int8")
