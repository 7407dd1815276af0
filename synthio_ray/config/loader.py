"""The typed loader behind every config: defaults <- YAML <- dotted ``key=value`` overrides, each value
checked against its field's type and ``opt`` constraints, every problem reported with its dotted key.

Generic over the section dataclasses: ``cls`` defaults to :class:`synthio_ray.config.Config`.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Union

import yaml

__all__ = ["ConfigError", "opt", "apply_overrides", "build_config", "load_config", "config_to_dict", "save_config",
           "describe_options"]


class ConfigError(ValueError):
    """A config that cannot be used. ``problems`` lists one ``"key: what is wrong"`` line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in self.problems))


def opt(default: Any = None, help: str = "", *, choices: tuple | None = None, ge: float | None = None,
        le: float | None = None, gt: float | None = None, lt: float | None = None,
        path: str | None = None, factory: Any = None) -> Any:
    """A config field with its documentation and constraints.

    ``path`` is ``"file"``, ``"dir"`` or ``"any"``: the value (when not null) must exist on disk.
    """
    meta = dict(help=help, choices=choices, ge=ge, le=le, gt=gt, lt=lt, path=path)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _root() -> type:
    from synthio_ray.config.system import Config

    return Config


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _type_name(tp: Any) -> str:
    tp, optional = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if origin is list:
        name = f"list of {_type_name(typing.get_args(tp)[0])}"
    elif origin is dict:
        name = "mapping"
    elif origin in (Union, types.UnionType):
        name = " or ".join(_type_name(a) for a in typing.get_args(tp))
    else:
        name = {int: "integer", float: "number", str: "string", bool: "boolean"}.get(tp, str(tp))
    return f"{name} or null" if optional else name


def _coerce_str(text: str, tp: Any) -> Any:
    """Turn a command-line string into a value of type ``tp`` (best effort; checked afterwards)."""
    base, optional = _unwrap_optional(tp)
    if optional and text.strip().lower() in ("null", "none", "~"):
        return None
    if base is str:
        return text
    if base is bool:
        low = text.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else text
    if base is int:
        try:
            return int(text)
        except ValueError:
            return text
    if base is float:
        try:
            return float(text)
        except ValueError:
            return text
    if typing.get_origin(base) is list:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                items = yaml.safe_load(stripped)
            except yaml.YAMLError:
                return text
        else:
            items = [s for s in (p.strip() for p in stripped.split(",")) if s]
        inner = typing.get_args(base)[0]
        return [_coerce_str(str(x), inner) if isinstance(x, str) or inner is str else x for x in items]
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _check_value(key: str, value: Any, tp: Any, meta: dict) -> tuple[Any, list[str]]:
    base, optional = _unwrap_optional(tp)
    if value is None:
        return (None, []) if optional else (None, [f"{key}: expected {_type_name(tp)}, got null"])
    bad = [f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"]
    if base is bool:
        if not isinstance(value, bool):
            return value, bad
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return value, bad
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, bad
        value = float(value)
    elif base is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            else:
                return value, bad
    elif typing.get_origin(base) is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            return value, bad
        inner = typing.get_args(base)[0]
        out, problems = [], []
        for i, item in enumerate(value):
            v, p = _check_value(f"{key}[{i}]", item, inner, {})
            out.append(v)
            problems += p
        if problems:
            return value, problems
        value = out
    elif typing.get_origin(base) is dict:
        if not isinstance(value, dict):
            return value, bad
    problems = []
    if meta.get("choices") and value not in meta["choices"]:
        problems.append(f"{key}: expected one of {', '.join(map(str, meta['choices']))}; got {value!r}")
    for op, fn, word in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                         ("le", lambda a, b: a <= b, "<="), ("lt", lambda a, b: a < b, "<")):
        bound = meta.get(op)
        if bound is not None and isinstance(value, (int, float)) and not fn(value, bound):
            problems.append(f"{key}: expected a value {word} {bound}, got {value!r}")
    kind = meta.get("path")
    if kind and isinstance(value, str):
        p = Path(os.path.expanduser(value))
        if kind == "file" and not p.is_file():
            problems.append(f"{key}: file not found: {value}")
        elif kind == "dir" and not p.is_dir():
            problems.append(f"{key}: folder not found: {value}")
        elif kind == "any" and not p.exists():
            problems.append(f"{key}: path not found: {value}")
    return value, problems


def _build(cls: type, raw: dict, prefix: str, problems: list[str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for k in raw:
        if k not in fields:
            key = f"{prefix}{k}"
            close = difflib.get_close_matches(str(k), list(fields), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            problems.append(f"{key}: unknown key{hint}; valid keys here: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        tp = hints[name]
        key = f"{prefix}{name}"
        if _is_section(tp):
            sub = raw.get(name, {})
            if sub is None:
                sub = {}
            if not isinstance(sub, dict):
                problems.append(f"{key}: expected a section (mapping of keys), got {sub!r}")
                sub = {}
            kwargs[name] = _build(tp, sub, key + ".", problems)
        elif name in raw:
            value, p = _check_value(key, raw[name], tp, dict(f.metadata))
            problems += p
            if not p:
                kwargs[name] = value
    obj = cls(**kwargs)
    if hasattr(obj, "check"):
        problems += obj.check(prefix.rstrip(".") or "config")
    return obj


def _field_type(cls: type, dotted: str) -> Any:
    """The declared type at a dotted key, or raise KeyError with the closest match."""
    parts = dotted.split(".")
    tp: Any = cls
    for i, part in enumerate(parts):
        if not _is_section(tp):
            raise KeyError(f"{'.'.join(parts[:i])} is a value, not a section")
        names = [f.name for f in dataclasses.fields(tp)]
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1)
            where = ".".join(parts[:i]) or "the top level"
            hint = f" (did you mean '{'.'.join(parts[:i] + [close[0]])}'?)" if close else ""
            raise KeyError(f"unknown key{hint}; valid keys in {where}: {', '.join(names)}")
        tp = typing.get_type_hints(tp)[part]
    return tp


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def apply_overrides(tree: dict, overrides: list[str], cls: type = None) -> list[str]:
    """Apply ``key=value`` strings onto a raw config tree; return problems (unknown keys, bad syntax)."""
    cls = cls or _root()
    problems = []
    for item in overrides:
        if "=" not in item:
            problems.append(f"{item}: an override is key=value with a dotted key, e.g. data.n=100")
            continue
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            tp = _field_type(cls, key)
        except KeyError as e:
            problems.append(f"{key}: {e.args[0]}")
            continue
        if _is_section(tp):
            problems.append(f"{key}: is a section; set one of its keys, e.g. {key}."
                            f"{dataclasses.fields(tp)[0].name}=...")
            continue
        _set_dotted(tree, key, _coerce_str(text, tp))
    return problems


def build_config(tree: dict, cls: type = None) -> Any:
    """Check a raw tree (as read from YAML) and build the typed config, or raise ConfigError."""
    cls = cls or _root()
    problems: list[str] = []
    cfg = _build(cls, tree or {}, "", problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                cls: type = None) -> Any:
    """Defaults <- YAML file <- dotted overrides; checked. Raises ConfigError listing every problem."""
    cls = cls or _root()
    tree: dict = {}
    problems: list[str] = []
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError([f"--config: file not found: {path}"])
        try:
            tree = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError([f"--config: {path} is not valid YAML: {e}"]) from None
        if not isinstance(tree, dict):
            raise ConfigError([f"--config: {path} must hold a mapping of sections, got {type(tree).__name__}"])
    problems += apply_overrides(tree, overrides or [], cls)
    try:
        cfg = build_config(tree, cls)
    except ConfigError as e:
        problems += e.problems
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (re-loadable with ``load_config``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return p


def describe_options(cls: type = None, prefix: str = "") -> list[str]:
    """One line per leaf key: ``key (type, default X): help``; used by every job's --help."""
    cls = cls or _root()
    lines = []
    hints = typing.get_type_hints(cls)
    inst = cls()
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(tp):
            continue
        meta = f.metadata
        extra = f", one of {'|'.join(map(str, meta['choices']))}" if meta.get("choices") else ""
        default = getattr(inst, f.name)
        lines.append(f"  {prefix}{f.name} ({_type_name(tp)}{extra}, default {default!r}): {meta.get('help', '')}")
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(tp):
            lines.append(f"[{prefix}{f.name}] {tp.__doc__.splitlines()[0] if tp.__doc__ else ''}")
            lines += describe_options(tp, f"{prefix}{f.name}.")
    return lines
