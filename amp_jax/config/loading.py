"""Reading a run configuration: YAML files (later over earlier), ``--set`` overrides, validation, YAML out.

YAML files in ``configs/`` override the defaults of :mod:`amp_jax.config.sections`; ``--set
section.field=value`` overrides YAML. Any unknown key, wrong type, out-of-range or inconsistent value, and
any file that is not readable UTF-8 YAML without repeated keys, raises one
:class:`~amp_jax.config.common.ConfigError` naming the source, the key path, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import pathlib
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from amp_jax.config.common import CONFIG_DIR, ConfigError
from amp_jax.config.sections import Config


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", str(tp))
    args = typing.get_args(tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} values ({', '.join(_type_name(a) for a in args)})"
    return str(tp)


def _coerce(value: Any, tp: Any, source: str, key: str) -> Any:
    """Checks ``value`` against the annotation ``tp`` and converts lists to tuples and ints to floats."""
    origin = typing.get_origin(tp)
    bad = ConfigError(source, key, value, _type_name(tp))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(source, key, value, f"a mapping of the fields of {tp.__name__}")
        return _build(tp, value, source, key + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value):
            raise ConfigError(source, key, value, "a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin is tuple:
        if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
            raise bad
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], source, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise bad
        return tuple(_coerce(v, a, source, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    raise TypeError(f"unsupported config annotation {tp!r} at {key}")


def _build(cls: type, data: Mapping[str, Any], source: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            raise ConfigError(source, prefix + str(name), data[name], _field_of(cls, fields, name))
    kwargs = {name: _coerce(value, hints[name], source, prefix + name) for name, value in data.items()}
    obj = cls(**kwargs)
    for name, ok, expected in obj._checks():
        if not ok:
            field_value: Any = obj
            for part in name.split("."):
                field_value = getattr(field_value, part)
            raise ConfigError(source, prefix + name, field_value, expected)
    return obj


def _field_of(cls: Any, names: Iterable[str], given: Any) -> str:
    """What an unknown key should have been: a field of ``cls``, the closest spelling first when one is close."""
    names = sorted(names)
    close = difflib.get_close_matches(str(given), names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"a field of {getattr(cls, '__name__', cls)} ({hint}one of: {', '.join(names)})"


def _set_dotted(data: dict, dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    cls: Any = Config
    node = data
    for depth, part in enumerate(parts):
        names = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        if part not in names:
            where = ".".join(parts[: depth + 1])
            raise ConfigError(source, where, value, _field_of(cls, names, part))
        cls = typing.get_type_hints(cls)[part]
        if depth == len(parts) - 1:
            node[part] = value
        else:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(source, ".".join(parts[: depth + 1]), child, "a mapping")
            node = child


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that repeats a key (which would silently keep the last value)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _read_yaml(path: pathlib.Path) -> Any:
    """Parses a config file; every problem with the file itself is a :class:`ConfigError` naming it."""
    source = str(path)
    if not path.is_file():
        raise ConfigError(source, "<file>", source, "a YAML file (this is not a regular file)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(source, "<file>", f"byte {err.start}", "UTF-8 text") from None
    except OSError as err:
        raise ConfigError(source, "<file>", source, f"a readable file ({err.strerror})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(source, "<file>", "<unparsable>",
                          f"valid YAML without repeated keys ({_one_line(err)})") from None


def _one_line(err: yaml.YAMLError) -> str:
    """The YAML library's problem and where it is, without its multi-line drawing of the text."""
    problem = getattr(err, "problem", None)
    if not problem:
        return " ".join(str(err).split())
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None and "(line" not in problem else ""
    return f"{problem}{where}"


def parse_override(text: str) -> tuple[str, Any]:
    """Splits ``'ppo.learning_rate=3e-4'`` into the key path and its YAML-parsed value."""
    if "=" not in text:
        raise ConfigError("--set", text, text, "KEY.PATH=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError("--set", key, raw, f"a YAML value ({err})") from None
    # YAML 1.1 reads '3e-4' as a string; accept plain floats in scientific notation too.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip(), value


def resolve_config_path(name: str | pathlib.Path) -> pathlib.Path:
    """A path as given if it exists, else the bare name (with ``.yaml`` added if missing) in ``configs/``."""
    path = pathlib.Path(name).expanduser()
    if path.exists():
        return path.resolve()
    for candidate in (CONFIG_DIR / path.name, CONFIG_DIR / (path.name + ".yaml")):
        if candidate.exists():
            return candidate
    raise ConfigError(str(name), "<file>", str(name),
                      f"an existing YAML file or the name of one in {CONFIG_DIR} "
                      f"({', '.join(sorted(p.name for p in CONFIG_DIR.glob('*.yaml')))})")


def from_dict(data: Mapping[str, Any] | None, source: str = "<dict>") -> Config:
    """Builds and validates a :class:`Config` from nested mappings (missing fields take their defaults)."""
    return _build(Config, data or {}, source)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(names: str | pathlib.Path | Sequence[str | pathlib.Path] | None = None,
                overrides: Sequence[str] = ()) -> Config:
    """Loads YAML configs (``None``: all defaults), later files over earlier ones, then dotted overrides.

    Args:
      names: a path or a list of paths; a bare name resolves against ``configs/`` (``a1_trot`` or
        ``a1_trot.yaml``). Each file is validated on its own first, so an error names the file holding it.
      overrides: strings ``section.field=value``; values are parsed as YAML.
    Raises:
      ConfigError: naming the file (or ``--set``), the key path, the value and what was expected.
    """
    if names is None:
        names = []
    elif isinstance(names, (str, pathlib.Path)):
        names = [names]
    data: dict = {}
    source = "<defaults>"
    for name in names:
        path = resolve_config_path(name)
        source = str(path)
        loaded = _read_yaml(path)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(source, "<top level>", loaded, "a mapping of sections")
        _build(Config, loaded or {}, source)
        data = _merge(data, loaded or {})
    if len(names) > 1:
        source = " + ".join(str(resolve_config_path(n)) for n in names)
        _build(Config, data, source)
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value, "--set")
    return _build(Config, data, "--set" if overrides else source)


def to_dict(config: Any) -> Any:
    """Plain nested dicts and lists of a config, for YAML and JSON (round-trips through :func:`from_dict`)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, tuple):
        return [to_dict(v) for v in config]
    return config


def dump_yaml(config: Config) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
