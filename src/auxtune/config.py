"""Typed configuration: frozen dataclasses built from YAML plus dotted ``key=value`` overrides.

Every component declares a frozen dataclass; :func:`from_dict` builds it from plain data, checking
types, ``Literal`` choices and unknown keys, so a bad value fails once, at the boundary, with the
field's dotted name and what would have been accepted::

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Optim:
    ...     lr: float = 0.1
    >>> from_dict(Optim, {"lr": "0.05"}).lr
    0.05

A section whose sub-sections a registry decides (``weighting.<plugin>``) declares one mapping field
with ``metadata={"inline": True}``: it collects the keys that name no field (the class validates
them), and :func:`to_dict` writes its items back in place.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the fix."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, failing with the file name when it is missing or malformed."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory: pass a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a YAML text file (not UTF-8)") from None
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {_one_line(err)}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted ``a.b=value`` overrides applied (values parsed as YAML).

    >>> apply_overrides({"optim": {"lr": 0.1}}, ["optim.lr=0.05", "seed=3"])
    {'optim': {'lr': 0.05}, 'seed': 3}
    """
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {item!r} is not of the form key=value (e.g. optim.lr=0.05)"
            )
        try:
            set_dotted(result, key.strip(), _override_value(item, raw))
        except ConfigError as err:
            raise ConfigError(f"override {item!r}: {err}") from None
    return result


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data[a][b] = value`` for ``key = "a.b"``, creating the sections on the way.

    >>> data = {"optim": {"lr": 0.1}}
    >>> set_dotted(data, "weighting.gradnorm.alpha", 0.5); data["weighting"]
    {'gradnorm': {'alpha': 0.5}}
    """
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{part} is a value, not a section")
        node = child
    node[leaf] = value


def _override_value(item: str, raw: str) -> Any:
    if not raw.strip():
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(
            f"override {item!r}: the value is not valid YAML ({_one_line(err)}); quote it or "
            "write it as in the YAML file"
        ) from None


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def to_dict(config: Any) -> Any:
    """Plain-data view of a config (dataclasses and tuples become dicts and lists)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        plain: dict[str, Any] = {}
        for f in dataclasses.fields(config):
            value = to_dict(getattr(config, f.name))
            if f.metadata.get("inline"):
                plain.update(value)
            else:
                plain[f.name] = value
        return plain
    if isinstance(config, Mapping):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    return config


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of nested plain data: ``{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build dataclass ``cls`` from plain data, validating every field."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__} must be a mapping, got {data!r}")
    all_fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    inline = [f.name for f in all_fields if f.metadata.get("inline")]
    fields = {f.name: f for f in all_fields if f.name not in inline}
    unknown = sorted(set(data) - set(fields))
    if unknown and not inline:
        where = f"{path}." if path else ""
        raise ConfigError(
            f"unknown config key {where}{unknown[0]}; valid keys: {', '.join(sorted(fields))}"
        )
    hints = get_type_hints(cls)
    kwargs = {
        name: _coerce(hints[name], value, f"{path}.{name}" if path else name)
        for name, value in data.items()
        if name in fields
    }
    if inline:  # the class itself validates what its open mapping collected
        kwargs[inline[0]] = {name: data[name] for name in unknown}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path or cls.__name__}: {err}") from err


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{path} = {value!r} is not allowed; choose one of {allowed}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{path} = {value!r} has the wrong type"
        )
    if dataclasses.is_dataclass(tp):
        return from_dict(typing.cast(type, tp), value, path)
    if origin is tuple:
        items = _as_list(value, path)
        item_type = args[0] if args else Any
        return tuple(_coerce(item_type, v, f"{path}[{i}]") for i, v in enumerate(items))
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        key_t, val_t = args or (Any, Any)
        return {_coerce(key_t, k, path): _coerce(val_t, v, f"{path}.{k}") for k, v in value.items()}
    return _scalar(tp, value, path)


def _scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{path} = {value!r} must be true or false")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r} must be a number")
        try:
            number = tp(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{path} = {value!r} must be {tp.__name__}") from None
        if tp is int and isinstance(value, float) and value != number:
            raise ConfigError(f"{path} = {value!r} must be a whole number")
        if tp is float and not math.isfinite(number):
            raise ConfigError(f"{path} = {value!r} must be a finite number")
        return number
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r} must be a string")
        return str(value)
    return value


def _as_list(value: Any, path: str) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(f"{path} must be a list, got {value!r}")


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(message)
