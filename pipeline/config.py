"""Load one section of params.yaml into a strict pydantic model, failing early on bad values.

Each stage's params class subclasses ``StrictParams``: types are strict (no "16" for
an int, no ``true`` for a number), unknown keys are rejected, and the class's
``check()`` holds the range rules. Every problem is raised as ``ConfigError`` naming
the dotted key (``train.batch_size``), before the stage does any work.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

PARAMS_FILE = Path("params.yaml")


class ConfigError(ValueError):
    """A params.yaml value is missing, unknown or of the wrong type; names the key."""


class StrictParams(BaseModel):
    """Base of every params section: strict types, no unknown keys, frozen."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    def check(self) -> None:
        """Range rules of the section; raise via ``require`` (overridden by sections)."""

    @model_validator(mode="after")
    def _run_checks(self):
        self.check()
        return self


T = TypeVar("T", bound=StrictParams)

_TYPE_NAMES = {
    "int_type": "int",
    "float_type": "float",
    "bool_type": "bool",
    "string_type": "str",
    "list_type": "list",
    "dict_type": "mapping",
    "model_type": "mapping",
}


def _messages(error: ValidationError, section: str) -> list[str]:
    messages = []
    for item in error.errors():
        key = ".".join([section, *(str(part) for part in item["loc"])])
        kind = item["type"]
        if kind == "missing":
            messages.append(f"params: missing key {key}")
        elif kind == "extra_forbidden":
            messages.append(f"params: unknown key(s) {key}")
        elif kind in _TYPE_NAMES or kind.endswith("_type"):
            expected = _TYPE_NAMES.get(kind, kind.removesuffix("_type"))
            messages.append(f"params: {key} must be {expected}, got {item.get('input')!r}")
        elif kind == "value_error":
            messages.append(f"params: {item['ctx']['error']}")
        else:
            messages.append(f"params: {key}: {item['msg']} (got {item.get('input')!r})")
    return messages


def parse_section(raw: Any, section: str, schema: type[T]) -> T:
    """Build ``schema`` from the mapping ``raw``; every problem names ``section.key``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"params: section '{section}' must be a mapping, got {raw!r}")
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        raise ConfigError("; ".join(_messages(error, section))) from None


class ParamsLoader(yaml.SafeLoader):
    """YAML 1.2 floats: ``5e-05`` is a number, as DVC reads it.

    `dvc exp run -S train.learning_rate=5e-5` writes ``learning_rate: 5e-05``; PyYAML's
    YAML 1.1 rules need a dot (``5.0e-05``) and would read it as the string '5e-05'.
    """


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_params(params_file: Path = PARAMS_FILE) -> dict[str, Any]:
    """The whole params file, numbers read as DVC reads them (``ParamsLoader``)."""
    with open(params_file, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=ParamsLoader) or {}


def load_section(section: str, schema: type[T], params_file: Path = PARAMS_FILE) -> T:
    """Read ``section`` of ``params_file`` (default: ./params.yaml) into ``schema``."""
    params = read_params(params_file)
    if section not in params:
        raise ConfigError(f"params: missing section '{section}' in {params_file}")
    return parse_section(params[section], section, schema)


def require(condition: bool, key: str, message: str) -> None:
    """For ``check()``: raise a ValueError that names the key."""
    if not condition:
        raise ValueError(f"{key} {message}")
