"""The one settings system: validated dataclasses built the way verl builds its own.

Every group of settings (the reward, the encoder, a dataset build ...) is a frozen
dataclass. A recipe mapping becomes one through :func:`build_dataclass`, which
merges it into ``OmegaConf.structured(cls)`` as verl's ``omega_conf_to_dataclass``
does, so an unknown key, a wrong type or a value outside a closed choice fails at
load. Range checks live on the fields themselves (:func:`setting` with ``ge``,
``gt``, ``le``, ``lt``) and run at construction (:class:`Settings`). Every error is
one :class:`ConfigError` naming the dotted setting (``encoder.max_length``).

Command lines are generated from the same dataclasses (:func:`add_flags`,
:func:`flag_values`), so a default and its help text exist in exactly one place.

This module is the bottom layer: it imports only the standard library and omegaconf.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import functools
import json
import math
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException, ValidationError

__all__ = [
    "Choice",
    "ConfigError",
    "Settings",
    "add_flags",
    "build_dataclass",
    "deep_merge",
    "flag_values",
    "setting",
    "to_container",
    "to_plain",
]


class ConfigError(ValueError):
    """A setting is wrong. ``key`` is its dotted name when the error is about one setting."""

    def __init__(self, message: str, *, key: str | None = None, problem: str | None = None,
                 what: str = "setting"):
        super().__init__(message)
        self.key, self.problem, self.what = key, problem, what

    @classmethod
    def at(cls, key: str, problem: str, what: str = "setting") -> ConfigError:
        """The error for one named setting: ``<what> '<key>': <problem>``."""
        return cls(f"{what} '{key}': {problem}", key=key, problem=problem, what=what)

    def under(self, prefix: str) -> ConfigError:
        """The same error seen from a parent node (``raw_corpus.`` + ``splits.test``)."""
        if not prefix or self.key is None or self.problem is None:
            return self
        return ConfigError.at(f"{prefix}{self.key}", self.problem, self.what)


class Choice(str, enum.Enum):
    """A closed choice. Members are strings, so YAML values, ``==`` and f-strings keep working.

    Member names must equal their values: OmegaConf converts a YAML string to a
    member by name, and ``hash`` of an Enum member is the hash of its name.
    """

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, help: str = "",
            flag: str | None = None, nargs: str | None = None, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field with its range and its command-line help (checked by :class:`Settings`).

    ``flag`` renames the generated command-line flag (default: the field name in
    kebab case); ``nargs`` sets how many values a sequence flag takes (default ``+``).
    Bounds reject NaN and infinity as well as out-of-range numbers.
    """
    metadata = {"help": help, "flag": flag, "nargs": nargs, "ge": ge, "gt": gt, "le": le, "lt": lt}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


# -- types --------------------------------------------------------------------------


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """(inner type, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.Enum)


def _sequence_item(hint: Any) -> Any | None:
    """``X`` for ``tuple[X, ...]`` or ``list[X]``, else None."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        return args[0] if len(args) == 2 and args[1] is Ellipsis else None
    if origin is list:
        return (typing.get_args(hint) or (Any,))[0]
    return None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _check_scalar(hint: Any, value: Any) -> str | None:
    """A problem description when ``value`` does not fit the plain type ``hint``."""
    if hint is bool and not isinstance(value, bool):
        return f"must be true or false, got {value!r}"
    if hint is int and (not isinstance(value, int) or isinstance(value, bool)):
        return f"must be an integer, got {value!r}"
    if hint is float and not _is_number(value):
        return f"must be a number, got {value!r}"
    if hint is str and not isinstance(value, str):
        return f"must be a string, got {value!r}"
    return None


def _check_range(meta: Mapping[str, Any], value: Any, noun: str = "a finite number") -> str | None:
    bounds = {k: meta.get(k) for k in ("ge", "gt", "le", "lt") if meta.get(k) is not None}
    if not bounds:
        return None
    lo = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}" if "gt" in bounds else "(-inf"
    hi = f"{bounds['le']}]" if "le" in bounds else f"{bounds['lt']})" if "lt" in bounds else "inf)"
    wanted = f"must be {noun} in {lo}, {hi}, got {value!r}"
    if not _is_number(value) or not math.isfinite(value):
        return wanted
    if (("ge" in bounds and value < bounds["ge"]) or ("gt" in bounds and value <= bounds["gt"])
            or ("le" in bounds and value > bounds["le"]) or ("lt" in bounds and value >= bounds["lt"])):
        return wanted
    return None


class Settings:
    """Base of every settings dataclass: field checks at construction, then :meth:`validate`.

    ``SECTION`` is the node's dotted name in a recipe (``encoder``), ``WHAT`` the
    family named in errors (``semantic reward setting``). Fields are converted
    and checked whether the object comes from :func:`build_dataclass` or from code:
    strings become :class:`Choice` members, lists of a ``tuple[...]`` field become
    tuples, plain types are checked, then ranges from :func:`setting`.
    """

    SECTION: ClassVar[str] = ""
    WHAT: ClassVar[str] = "setting"

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            hint, optional = _unwrap_optional(hints[f.name])
            value = getattr(self, f.name)
            if value is None:
                if not optional and hint is not Any:
                    self.fail(f.name, "must be set, got null")
                continue
            if _is_enum(hint) and not isinstance(value, hint):
                try:
                    value = hint(value)
                except ValueError:
                    self.fail(f.name, f"{value!r} is not one of {', '.join(str(m.value) for m in hint)}")
                object.__setattr__(self, f.name, value)
            item = _sequence_item(hint)
            if item is not None and typing.get_origin(hint) is tuple:
                if isinstance(value, str) or not isinstance(value, Sequence):
                    self.fail(f.name, f"must be a list, got {value!r}")
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            noun = "an integer" if hint is int else "a finite number"
            problem = _check_scalar(hint, value) or _check_range(f.metadata, value, noun)
            if problem:
                self.fail(f.name, problem)
        self.validate()

    def validate(self) -> None:
        """Checks between fields; raise with :meth:`fail`."""

    @classmethod
    def key(cls, name: str) -> str:
        return f"{cls.SECTION}.{name}" if cls.SECTION else name

    def fail(self, name: str, problem: str) -> typing.NoReturn:
        raise ConfigError.at(self.key(name), problem, self.WHAT)


# -- building from a mapping ----------------------------------------------------------


def to_container(mapping: Any) -> Any:
    """An OmegaConf node as plain dicts and lists (resolved); anything else as it is."""
    if isinstance(mapping, DictConfig | ListConfig):
        return OmegaConf.to_container(mapping, resolve=True)
    return mapping


def _what(cls: type, what: str | None) -> str:
    return what or getattr(cls, "WHAT", "setting")


def _check_keys(cls: type, mapping: Any, prefix: str, what: str) -> None:
    """Unknown keys fail with a did-you-mean naming the dotted key; nested nodes must be mappings."""
    if not isinstance(mapping, Mapping):
        raise ConfigError.at(prefix.rstrip(".") or "<root>", f"expected a mapping, got {type(mapping).__name__}",
                             what)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    for key, value in mapping.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known: {', '.join(fields)}"
            raise ConfigError(f"{what} '{prefix}{key}' is unknown; {hint}", key=f"{prefix}{key}",
                              problem=f"unknown; {hint}", what=what)
        nested, _ = _unwrap_optional(hints[key])
        if dataclasses.is_dataclass(nested) and not isinstance(value, nested) and value is not None:
            _check_keys(nested, value, f"{prefix}{key}.", what)


def _unlock(node: Any) -> None:
    """OmegaConf marks the nodes of a frozen dataclass read-only; merging needs them writable."""
    OmegaConf.set_readonly(node, None)
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = None if OmegaConf.is_missing(node, key) else node[key]
            if isinstance(child, DictConfig | ListConfig):
                _unlock(child)


@functools.cache
def _schema(cls: type) -> DictConfig | None:
    """``OmegaConf.structured(cls)``, or None when a field has a type OmegaConf cannot hold."""
    try:
        schema = OmegaConf.structured(cls)
    except ValidationError:
        return None
    _unlock(schema)
    return schema


def _construct(cls: type, mapping: Mapping[str, Any]) -> Any:
    """Plain recursive construction, for dataclasses whose field types OmegaConf does not support."""
    hints = _hints(cls)
    kwargs = {}
    for key, value in mapping.items():
        nested, _ = _unwrap_optional(hints[key])
        if dataclasses.is_dataclass(nested) and isinstance(value, Mapping):
            value = _construct(nested, value)
        kwargs[key] = value
    return cls(**kwargs)


def _first_line(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0]


def build_dataclass(cls: type, mapping: Any, prefix: str = "", error: type[Exception] = ConfigError,
                    what: str | None = None) -> Any:
    """Build a (nested) dataclass from a plain or OmegaConf mapping, as verl does.

    Unknown keys, wrong types and values outside a closed choice fail here; checks
    in ``__post_init__`` (ranges, cross-field rules) fail at construction. The
    error names the dotted key, with ``prefix`` in front (``raw_corpus.``).
    """
    what = _what(cls, what)
    plain = to_container(mapping) if mapping is not None else {}
    try:
        _check_keys(cls, plain, prefix, what)
        schema = _schema(cls)
        try:
            if schema is None:
                return _construct(cls, plain)
            return OmegaConf.to_object(OmegaConf.merge(schema, plain))
        except ConfigError as exc:  # a check at construction names the key from the class's own node
            raise exc.under(prefix) from None
        except MissingMandatoryValue as exc:
            raise ConfigError.at(f"{prefix}{exc.full_key}", "is required", what) from None
        except OmegaConfBaseException as exc:
            raise ConfigError.at(f"{prefix}{exc.full_key}", _first_line(exc), what) from None
    except ConfigError as exc:
        if error is ConfigError or isinstance(exc, error):
            raise
        raise error(str(exc)) from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` on top, nested mappings merged key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def to_plain(obj: Any) -> Any:
    """A settings object as JSON-able builtins (choices become their strings)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=list))


# -- command lines --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Leaf:
    key: str
    field: dataclasses.Field
    hint: Any
    optional: bool
    section: str


def _leaves(cls: type, prefix: str = "", section: str = "") -> Iterator[_Leaf]:
    """Every scalar or sequence field, recursing into nested dataclasses; mapping fields are recipe-only."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        hint, optional = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(hint):
            yield from _leaves(hint, f"{prefix}{f.name}.", f.name)
        elif typing.get_origin(hint) not in (dict, Mapping) and hint is not dict:
            yield _Leaf(f"{prefix}{f.name}", f, hint, optional, section)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple | list):
        return " ".join(map(_show, value)) or "none"
    return str(value)


def _converter(hint: Any, optional: bool) -> Any:
    if hint in (int, float, str):
        base = hint
    elif _is_enum(hint):
        base = str
    else:  # Any and unions OmegaConf cannot type: read the value as YAML does (5000 -> int, 0.1 -> float)
        def base(text: str) -> Any:
            return OmegaConf.create({"v": text} if not text.strip() else f"v: {text}")["v"]
    if not optional:
        return base

    def convert(text: str) -> Any:
        return None if text.lower() in ("null", "none") else base(text)

    convert.__name__ = getattr(base, "__name__", "value")
    return convert


def add_flags(parser: argparse.ArgumentParser, cls: type, *, group: str, only: Sequence[str] | None = None,
              skip: Sequence[str] = (), flags: Mapping[str, str] | None = None,
              helps: Mapping[str, str] | None = None, defaults: Mapping[str, Any] | None = None,
              required: Sequence[str] = ()) -> None:
    """Add one flag per field of ``cls`` (dotted keys); read them back with :func:`flag_values`.

    Flags default to "not given", so the dataclass (or ``defaults``, for defaults
    that depend on something else such as the task) stays the one place a default
    lives; the help text shows it. ``flags``/``helps`` rename or describe fields of
    dataclasses that carry no :func:`setting` metadata; ``only``/``skip`` select
    dotted keys. Booleans get ``--x/--no-x``, choices their values, optional values
    accept ``null``.
    """
    flags, helps, defaults = dict(flags or {}), dict(helps or {}), dict(defaults or {})
    sections: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for leaf in _leaves(cls):
        if leaf.key in skip or (only is not None and leaf.key not in only):
            continue
        meta = leaf.field.metadata
        name = flags.get(leaf.key) or meta.get("flag") or leaf.field.name.replace("_", "-")
        if name in seen:
            raise ValueError(f"flag --{name} would set both {seen[name]} and {leaf.key}")
        seen[name] = leaf.key
        default = defaults.get(leaf.key, _default(leaf.field))
        text = helps.get(leaf.key) or meta.get("help") or ""
        kwargs: dict[str, Any] = {"dest": f"{group}:{leaf.key}", "default": argparse.SUPPRESS}
        if default is dataclasses.MISSING or leaf.key in required:
            kwargs["required"] = True
        elif "default:" not in text:  # a help text may explain a default that depends on other settings
            text = f"{text} (default: {_show(default)})".strip()
        kwargs["help"] = text.replace("%", "%%")
        item = _sequence_item(leaf.hint)
        if leaf.hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif item is not None:
            kwargs.update(nargs=meta.get("nargs") or "+", type=_converter(item, False),
                          metavar=leaf.field.name.upper())
        else:
            kwargs["type"] = _converter(leaf.hint, leaf.optional)
            kwargs["metavar"] = leaf.field.name.upper()
            if _is_enum(leaf.hint):
                kwargs["choices"] = [m.value for m in leaf.hint]
                del kwargs["metavar"]
        target = parser
        if leaf.section:
            if leaf.section not in sections:
                sections[leaf.section] = parser.add_argument_group(leaf.section)
            target = sections[leaf.section]
        target.add_argument(f"--{name}", **kwargs)


def flag_values(args: argparse.Namespace, group: str) -> dict[str, Any]:
    """The flags of ``group`` that were given, as a nested mapping for :func:`build_dataclass`."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        name, sep, key = dest.partition(":")
        if not sep or name != group:
            continue
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = list(value) if isinstance(value, tuple) else value
    return out
