"""Schemathesis against a real `bentoml serve`: the published OpenAPI document is the contract.

Every operation of /docs.json (the three endpoints and BentoML's health and metrics
routes) is fuzzed with every check schemathesis has: no 5xx, status codes, content
types, headers and bodies as documented, schema-violating requests refused (4xx) and
schema-valid ones accepted, wrong methods answered 405. The model is the tiny ONNX
one, stored without lineage metadata so that /metadata's null fields are exercised.
The seed is fixed, so a CI failure can be replayed; FUZZ_SEED picks another locally.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MIN_CASES = 1_000
# Per operation; the three endpoints get about this many each (the coverage phase adds
# its boundary cases), the four GET routes only a handful.
MAX_EXAMPLES = 400
SEED = int(os.environ.get("FUZZ_SEED", "20251107"))
TIMEOUT_S = 900


def test_fuzzing_the_published_contract_finds_no_failure(
    served_home_without_lineage: Path, servers, tmp_path: Path, capsys
) -> None:
    port = servers.free_port()
    env = servers.server_env(served_home_without_lineage, "stance-classifier:latest")
    report = tmp_path / "schemathesis.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"http://127.0.0.1:{port}/docs.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--continue-on-failure",
        "--request-timeout",
        "120",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    with servers.running(servers.serve_command(port), port, env, REPO_ROOT, tmp_path / "serve.log"):
        started = time.monotonic()
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path
        )
        elapsed = time.monotonic() - started

    summary = json.loads(report.read_text(encoding="utf-8"))
    cases = summary["test_cases"]["generated"]
    with capsys.disabled():
        print(
            f"\nschemathesis: {cases} cases over {summary['operations']['tested']} operations "
            f"in {elapsed:.0f} s, {len(summary['failures'])} failure kinds (seed {SEED})"
        )
    assert summary["failures"] == [] and summary["errors"] == [], run.stdout[-20_000:]
    assert run.returncode == 0, run.stdout[-20_000:]
    assert summary["operations"]["tested"] == summary["operations"]["total"]
    assert cases >= MIN_CASES
