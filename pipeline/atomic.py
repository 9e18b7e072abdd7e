"""Every stage writes its outs through here: a killed stage leaves no partial file.

A file or directory is written to a temporary sibling in the same folder, then moved
into place with ``os.replace`` (one rename on the same filesystem). Whoever reads the
path sees the old file or the complete new one, never a half-written one, even when
the writer is killed with SIGKILL. A file is fsynced before the rename and its folder
after it, so the same holds after a power cut.

A directory cannot be renamed over a non-empty one, so the old directory is first moved
aside (``.<name>.old-<pid>-<token>``), the new one renamed into place, then the old one
removed: a kill between the two renames leaves no directory at the path (and the old
one beside it), never a partial one.

Temporary siblings are hidden and named after the path and the writer's process id
(``.<stem>.tmp-<pid>-<token><suffix>``, the suffix kept so writers that pick a format
from it still work). What a killed writer left behind is removed by the next write of
the same path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMP_MARK, OLD_MARK = ".tmp-", ".old-"


def _split(path: Path) -> tuple[str, str]:
    """(stem, suffix) of the name: ``model.int8.onnx`` -> (``model.int8``, ``.onnx``)."""
    return path.stem, path.suffix


def _sibling(path: Path, mark: str) -> Path:
    stem, suffix = _split(path)
    return path.with_name(f".{stem}{mark}{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def leftovers(path: Path) -> list[Path]:
    """Temporary siblings of ``path`` left by writers that are no longer running."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stem, suffix = _split(path)
    pattern = re.compile(
        rf"\.{re.escape(stem)}(?:{re.escape(TEMP_MARK)}|{re.escape(OLD_MARK)})"
        rf"(\d+)-[0-9a-f]+{re.escape(suffix)}"
    )
    found = []
    for candidate in path.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and not _alive(int(match.group(1))):
            found.append(candidate)
    return sorted(found)


def _fsync_one(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync(path: Path) -> None:
    """Flush what was written, a file or a directory tree (its files and folders), to disk.

    Only regular files and folders: a writer's tree holds nothing else, and a socket or a
    FIFO cannot be opened for reading like a file."""
    _fsync_one(path)
    if path.is_dir():
        for child in path.rglob("*"):
            if not child.is_symlink() and (child.is_file() or child.is_dir()):
                _fsync_one(child)


def _publish(temp: Path, path: Path) -> None:
    if temp.is_dir() and path.exists():
        old = _sibling(path, OLD_MARK)
        os.replace(path, old)
        try:
            os.replace(temp, path)
        except BaseException:
            os.replace(old, path)
            raise
        _remove(old)
    else:
        os.replace(temp, path)
    _fsync_one(path.parent)  # the folder's entry for the rename; not its other contents


@contextlib.contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` to write a file or a directory to.

    It does not exist yet: create it (``open(temp, "w")``, ``temp.mkdir()``, a library's
    ``save(temp)``). When the block ends without an error it replaces ``path``; when it
    raises, it is removed and ``path`` is left as it was. The parent folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in leftovers(path):
        _remove(stale)
    temp = _sibling(path, TEMP_MARK)
    try:
        yield temp
        if not temp.exists():
            raise FileNotFoundError(f"nothing was written to {temp} (for {path})")
        _fsync(temp)
        _publish(temp, path)
    except BaseException:
        _remove(temp)
        raise


@contextlib.contextmanager
def open_replacing(path: Path | str, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open(path, mode, **kwargs)`` that replaces ``path`` only once the handle is closed
    without an error (text modes default to UTF-8)."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with replacing(path) as temp, open(temp, mode, **kwargs) as handle:
        yield handle


def write_text(path: Path | str, text: str) -> None:
    with open_replacing(path) as handle:
        handle.write(text)


def write_bytes(path: Path | str, data: bytes) -> None:
    with open_replacing(path, "wb") as handle:
        handle.write(data)


def write_json(path: Path | str, payload: Any) -> None:
    """``payload`` as indented JSON with a final newline (every JSON out of the stages)."""
    write_text(path, json.dumps(payload, indent=2) + "\n")
