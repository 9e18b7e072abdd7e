"""Load one section of params.yaml into a frozen dataclass, failing early on bad values."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

PARAMS_FILE = Path("params.yaml")

T = TypeVar("T")


class ConfigError(ValueError):
    """A params.yaml value is missing, unknown or of the wrong type; names the key."""


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin in (list, tuple):
        (item_type, *_) = typing.get_args(annotation) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, item_type) for v in value)
    if annotation is Any:
        return True
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def parse_section(raw: Any, section: str, schema: type[T]) -> T:
    """Build ``schema`` from the mapping ``raw``; every problem names ``section.key``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"params: section '{section}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"params: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}")
    values = {}
    for name, field in fields.items():
        key = f"{section}.{name}"
        if name not in raw:
            has_default = field.default is not dataclasses.MISSING or (
                field.default_factory is not dataclasses.MISSING
            )
            if has_default:
                continue
            raise ConfigError(f"params: missing key {key}")
        value = raw[name]
        if not _type_ok(value, hints[name]):
            raise ConfigError(
                f"params: {key} must be {getattr(hints[name], '__name__', hints[name])}, "
                f"got {value!r}"
            )
        values[name] = tuple(value) if isinstance(value, list) else value
    try:
        return schema(**values)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"params: {section}: {error}") from error


def load_section(section: str, schema: type[T], params_file: Path = PARAMS_FILE) -> T:
    """Read ``section`` of ``params_file`` (default: ./params.yaml) into ``schema``."""
    with open(params_file, encoding="utf-8") as handle:
        params = yaml.safe_load(handle) or {}
    if section not in params:
        raise ConfigError(f"params: missing section '{section}' in {params_file}")
    return parse_section(params[section], section, schema)


def require(condition: bool, key: str, message: str) -> None:
    """For __post_init__ checks: raise a ValueError that names the key."""
    if not condition:
        raise ValueError(f"{key} {message}")
