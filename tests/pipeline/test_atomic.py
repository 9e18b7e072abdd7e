"""Atomic outs: a writer killed with SIGKILL leaves the old file or the complete new one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.atomic import leftovers, open_replacing, replacing, write_json, write_text

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = 2_000_000  # characters per version: long enough to be killed in the middle of one

# Rewrites the file forever, each version SIZE copies of one digit, in 64 KiB pieces
# with a pause after each, and says when it has begun a version: a kill right after
# that lands in the middle of a version.
REWRITE_FOREVER = f"""
import itertools, sys, time
from pipeline.atomic import open_replacing
for version in itertools.count():
    with open_replacing(sys.argv[1]) as handle:
        for piece in range({SIZE} // 65536 + 1):
            handle.write(str(version % 10) * 65536)
            handle.flush()
            if piece == 0:
                print(version, flush=True)
            time.sleep(0.002)
        handle.truncate({SIZE})
"""

# Writes part of a file (or of a directory), says so, then waits to be killed.
STOPS_MIDWAY = """
import sys, time
from pathlib import Path
from pipeline.atomic import open_replacing, replacing
target = Path(sys.argv[1])
if sys.argv[2] == "file":
    with open_replacing(target) as handle:
        handle.write("half of the new file")
        handle.flush()
        print("writing", flush=True)
        time.sleep(120)
else:
    with replacing(target) as temp:
        temp.mkdir()
        (temp / "config.json").write_text("{}")
        print("writing", flush=True)
        time.sleep(120)
"""


def start(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, env=env
    )


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_replaces_the_file_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "out" / "metrics.json"
    write_json(target, {"macro_f1": 0.5})
    write_json(target, {"macro_f1": 0.75})
    assert target.read_text(encoding="utf-8") == '{\n  "macro_f1": 0.75\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_an_error_keeps_the_old_file_and_removes_the_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError, match="mid-write"), open_replacing(target) as handle:
        handle.write("new, half")
        raise RuntimeError("failed mid-write")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_writes_into_a_folder_that_holds_a_socket(tmp_path: Path) -> None:
    """The folder's other entries are not flushed: a unix socket there (as a server leaves
    in /tmp) cannot be opened like a file, and once made the write fail with ENXIO."""
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(tmp_path / "server.sock"))
        write_json(tmp_path / "metrics.json", {"macro_f1": 0.5})
        with replacing(tmp_path / "onnx") as temp:
            temp.mkdir()
            (temp / "model.onnx").write_bytes(b"onnx")
    finally:
        server.close()
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8")) == {"macro_f1": 0.5}
    assert (tmp_path / "onnx" / "model.onnx").read_bytes() == b"onnx"


def test_temporary_file_keeps_the_suffix_for_writers_that_read_it(tmp_path: Path) -> None:
    target = tmp_path / "confusion.png"
    with replacing(target) as temp:
        assert temp.parent == tmp_path and temp.suffix == ".png" and temp.name.startswith(".")
        temp.write_bytes(b"png")
    assert target.read_bytes() == b"png"


def test_directory_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "models" / "stance"
    with replacing(target) as temp:
        temp.mkdir()
        (temp / "old-only.txt").write_text("old")
    with replacing(target) as temp:
        temp.mkdir()
        (temp / "weights").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["weights"]
    assert [p.name for p in target.parent.iterdir()] == ["stance"]


def test_an_error_keeps_the_old_directory(tmp_path: Path) -> None:
    target = tmp_path / "stance-onnx"
    with replacing(target) as temp:
        temp.mkdir()
        (temp / "model.onnx").write_text("old")
    with pytest.raises(ValueError, match="export failed"), replacing(target) as temp:
        temp.mkdir()
        (temp / "model.onnx").write_text("new, half")
        raise ValueError("export failed")
    assert (target / "model.onnx").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["stance-onnx"]


def test_writing_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing was written"), replacing(tmp_path / "x"):
        pass


def test_sigkill_at_any_moment_leaves_the_old_or_the_complete_new_file(tmp_path: Path) -> None:
    target = tmp_path / "train.jsonl"
    writer = start(REWRITE_FOREVER, str(target))
    for _ in range(4):  # versions 0 to 2 are complete; killed while writing version 3
        writer.stdout.readline()
    kill(writer)

    text = target.read_text(encoding="utf-8")
    assert len(text) == SIZE
    assert len(set(text)) == 1 and text[0] in "0123"  # one whole version
    # What the killed writer left of its version is removed by the next write.
    write_text(target, "next\n")
    assert not leftovers(target)
    assert [p.name for p in tmp_path.iterdir()] == ["train.jsonl"]


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_sigkill_mid_write_keeps_the_old_version(tmp_path: Path, kind: str) -> None:
    target = tmp_path / ("metrics.json" if kind == "file" else "stance")
    if kind == "file":
        write_text(target, "the old file")
    else:
        with replacing(target) as temp:
            temp.mkdir()
            (temp / "model.safetensors").write_text("old weights")
    writer = start(STOPS_MIDWAY, str(target), kind)
    assert writer.stdout.readline() == "writing\n"
    kill(writer)

    if kind == "file":
        assert target.read_text(encoding="utf-8") == "the old file"
    else:
        assert [p.name for p in target.iterdir()] == ["model.safetensors"]
    (left,) = leftovers(target)
    assert left.name.startswith(f".{target.stem}.tmp-{writer.pid}-")
