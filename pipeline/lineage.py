"""Which data made a model: content hashes as DVC computes them, and the prepare record.

``file_md5`` and ``dir_md5`` give the md5 DVC 3 records in dvc.lock for a file and for
a directory (``<md5>.dir``), so MLflow, the registry and dvc.lock name the same data.
``prepare`` writes a ``Lineage`` record beside the splits (the corpus directory's md5
and the params it split with); `train` and `baseline` read it and put it on their runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.atomic import write_text

LINEAGE_FILE = "lineage.json"  # beside the prepared splits


def file_md5(path: Path) -> str:
    """The md5 DVC 3 records for a single file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dir_md5(directory: Path) -> str:
    """The md5 DVC 3 records for a directory: the md5 of its sorted JSON file listing
    ([{"md5": ..., "relpath": ...}], keys sorted) plus ``.dir``.

    Every file under ``directory`` counts (the project has no .dvcignore rules for data).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    entries = [
        {"md5": file_md5(path), "relpath": path.relative_to(directory).as_posix()}
        for path in directory.rglob("*")
        if path.is_file()
    ]
    entries.sort(key=lambda entry: entry["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"


def short(md5: str) -> str:
    """The first 8 hex digits of an md5 (``.dir`` dropped): enough to tell versions apart."""
    return md5.removesuffix(".dir")[:8]


def flatten(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"<prefix>.a.b": 1}``: params.yaml keys as dotted names."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


class Lineage(BaseModel):
    """What `prepare` split, and how: read by the stages that log the training data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus_dir: str
    corpus_md5: str  # dir_md5 of corpus_dir: the md5 dvc.lock records for it
    corpus_files: int
    params: dict[str, Any]  # prepare's params.yaml section, as dotted names (prepare.seed)

    def save(self, directory: Path) -> Path:
        path = Path(directory) / LINEAGE_FILE
        write_text(path, self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Lineage:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} is missing: run the prepare stage first")
        try:
            return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except ValidationError as error:
            raise ValueError(f"{path}: {error}") from None
