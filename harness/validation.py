"""One validation layer for every input file (scenarios, campaign specs, landers, terrains, sensor
tables, fault tables, rig files).

Two halves:

* **Reading**: :func:`read_toml` / :func:`parse_toml` turn every way a file can be unreadable
  (missing, a folder, no permission, not UTF-8, not TOML, an integer outside TOML's 64-bit range,
  NaN or infinity where the schema wants a number) into a :class:`~harness.errors.ConfigError`
  that names the file and, where there is one, the key.
* **Checking**: a schema is a :class:`Model` (pydantic v2, strict: no bool-as-number, no string
  coercion, NaN/inf refused, unknown keys refused). :func:`validate` checks a dict against it and
  turns pydantic's errors into one ConfigError whose message names the file, the key path as the
  user wrote it (``[dispersions.altitude_m] sigma``), the bad value and what is allowed (the
  allowed keys, the enum's values, the range of the number)::

      spec.toml: [dispersions.altitude_m] sigma = -3 is invalid (below the minimum); allowed: a number >= 0

A model's own cross-field check raises :class:`KeyProblem` to name the key it is about.
:class:`Interval` is the shared ``low`` below ``high`` table (falsify search intervals and
boundaries; a schema subclasses it to add keys).
"""
from __future__ import annotations

import math
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.fields import FieldInfo

from harness.errors import ConfigError
from harness.safetext import printable

__all__ = ["Model", "KeyProblem", "Interval", "validate", "read_toml", "read_text", "parse_toml", "check_values",
           "key_text", "value_text", "one_of", "INT64_MIN", "INT64_MAX", "MAX_FILE_BYTES", "MAX_NESTING",
           "check_option", "check_output_file"]

# TOML integers are signed 64-bit (toml.io, "Integer"); Python's tomllib reads any length.
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
# No input file of fsil is near this; a bigger one is a mistake (a log, an image) named as such.
MAX_FILE_BYTES = 1024 * 1024  # config TOML files (the largest shipped one is 4 kB): a hostile 10 MB file would take the TOML parser ~25 s
# Tables and arrays nested deeper than this: no fsil schema comes near (a scenario's deepest key is
# 3 levels); deeper is hostile ([a.a.a....] 20,000 levels deep made the checkers recurse to a crash).
MAX_NESTING = 64


class Model(BaseModel):
    """Base of every file schema: unknown keys refused, strict types (``true`` is not 1, ``"3"``
    is not 3; an integer is accepted where a real number is meant), NaN and infinity refused,
    instances immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class KeyProblem(ValueError):
    """Raised inside a model's validator to name the key a cross-field rule is about.

    ``key`` is relative to the model (``"weights"``), ``value`` the offending value, ``allowed``
    the text after "allowed:"."""

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(f"{key} = {value!r}; allowed: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


class Interval(Model):
    """A table with ``low`` below ``high`` (a search interval, a distribution's support), both in
    the unit of the quantity they bound."""

    low: float
    high: float

    @model_validator(mode="after")
    def _low_below_high(self):
        if self.low >= self.high:
            raise KeyProblem("low", self.low, f"below high ({self.high:g})")
        return self


# ------------------------------------------------------------------------------------------
# texts


def one_of(values) -> str:
    """``a, b or c`` from an iterable of allowed values."""
    vals = [str(v) for v in values]
    return vals[0] if len(vals) == 1 else ", ".join(vals[:-1]) + " or " + vals[-1] if vals else "(none)"


def value_text(v: Any, limit: int = 80) -> str:
    """A value from a file as it may be shown: TOML-like, control bytes escaped, cut short."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and abs(v) > 10 ** 30:
        s = str(v)
        return f"{s[:12]}...({len(s.lstrip('-'))} digits)"
    if isinstance(v, float):
        return {math.inf: "inf", -math.inf: "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, str):
        return printable(repr(v), limit)
    if isinstance(v, Mapping):
        return "a table" if v else "an empty table"
    return printable(repr(v), limit)


def key_text(loc: tuple, *, leaf_is_table: bool = False) -> str:
    """A key path as the user wrote it: ``("dispersions", "altitude_m", "sigma")`` ->
    ``[dispersions.altitude_m] sigma``; an array of tables as ``[[name]] #n`` (counted from 1):
    ``("faults", 0, "trigger", "phase")`` -> ``[[faults]] #1 trigger.phase``; an index into an
    array of values as ``[i]``: ``("campaign", "weights", 1)`` -> ``[campaign] weights[1]``."""
    loc = tuple(loc)
    for i, p in enumerate(loc):
        if isinstance(p, int) and 0 < i and isinstance(loc[i - 1], str) and (i < len(loc) - 1 or leaf_is_table):
            table = f"[[{_dotted(loc[:i])}]] #{p + 1}"
            rest = loc[i + 1:]
            return f"{table} {_dotted(rest)}" if rest else table
    parts = _dotted(loc, split=True)
    if not parts:
        return "(top level)"
    if leaf_is_table:
        return "[" + ".".join(parts) + "]"
    if len(parts) == 1:
        return parts[0]
    return "[" + ".".join(parts[:-1]) + "] " + parts[-1]


def _dotted(loc: tuple, split: bool = False):
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int) and parts:
            parts[-1] += f"[{p}]"
        else:
            s = str(p)
            parts.append(s if _BARE.issuperset(s) and s else printable(repr(s), 60))
    return parts if split else ".".join(parts)


_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")


# ------------------------------------------------------------------------------------------
# reading


def read_text(path: Path | str, *, what: str = "file") -> str:
    """The text of ``path`` (UTF-8). Missing, a folder, unreadable, too big or not UTF-8: a
    ConfigError naming the file and the reason."""
    p = Path(path)
    if "\x00" in str(p):  # os.stat() would raise ValueError
        raise ConfigError(f"{printable(str(p), 200)}: no such {what} (the name holds a NUL byte)")
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise ConfigError(f"{p}: the {what} is a folder; allowed: a TOML file")
        if not p.is_file():  # a FIFO, socket or device: reading it would block or never end
            raise ConfigError(f"{p}: the {what} is not a regular file (a pipe, socket or device); "
                              f"allowed: a TOML file")
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{p}: the {what} is {size} bytes; allowed: at most {MAX_FILE_BYTES} bytes "
                              f"(is this the right file?)")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such {what}") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}: the {what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start}, line {line}); allowed: a UTF-8 TOML file") from None


def parse_toml(text: str, source: str, *, what: str = "file") -> dict:
    """The TOML document in ``text``; a syntax error, an integer outside 64 bits, or NaN/infinity
    anywhere becomes a ConfigError naming ``source`` (and the key)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: the {what} is not valid TOML: {exc}") from None
    except (RecursionError, MemoryError, ValueError) as exc:  # absurdly nested arrays, huge numbers
        raise ConfigError(f"{source}: the {what} cannot be read as TOML: {type(exc).__name__}") from None
    check_values(doc, source)
    return doc


def read_toml(path: Path | str, *, what: str = "file") -> dict:
    """:func:`read_text` then :func:`parse_toml`."""
    return parse_toml(read_text(path, what=what), str(path), what=what)


def check_values(doc: Any, source: str, loc: tuple = ()) -> None:
    """Refuse, naming the key: integers outside TOML's 64-bit range, NaN or infinity (no fsil
    input means a non-finite number; TOML allows writing them, we do not), and tables or arrays
    nested more than :data:`MAX_NESTING` deep."""
    stack = [(loc, doc)]
    while stack:
        where, v = stack.pop()
        if len(where) > MAX_NESTING:
            raise ConfigError(f"{source}: {key_text(where[:3], leaf_is_table=True)}... is nested {len(where)} levels deep; "
                              f"allowed: at most {MAX_NESTING} levels of tables and arrays")
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            if not INT64_MIN <= v <= INT64_MAX:
                raise ConfigError(f"{source}: {key_text(where)} = {value_text(v)} is out of range; allowed: an "
                                  f"integer from -2^63 to 2^63-1 (TOML's 64-bit integers)")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ConfigError(f"{source}: {key_text(where)} = {value_text(v)} is not a finite number; "
                                  f"allowed: a finite number")
        elif isinstance(v, Mapping):
            stack.extend(((*where, k), x) for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend(((*where, i), x) for i, x in enumerate(v))


# ------------------------------------------------------------------------------------------
# checking


def validate(model: type[Model], data: Any, source: str, *, where: tuple = ()):
    """``model`` built from ``data`` (a dict from a TOML file). On any error, a ConfigError
    naming ``source``, the key path (``where`` + the error's location), the value and what is
    allowed; up to five problems, one per line."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {key_text(where, leaf_is_table=True) if where else 'the file'} must be a "
                          f"table; got {value_text(data)}; allowed keys: {', '.join(_fields(model))}")
    try:
        return model.model_validate(_lists(data))
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        lines = [_message(model, e, source, where) for e in errs[:5]]
        if len(errs) > 5:
            lines.append(f"{source}: ... and {len(errs) - 5} more problems")
        raise ConfigError("\n".join(lines)) from None


def _lists(v):
    """Tuples (from code) as lists, as TOML gives them, so strict list fields accept both."""
    if isinstance(v, Mapping):
        return {k: _lists(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_lists(x) for x in v]
    return v


def _fields(model) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _message(model, err: dict, source: str, where: tuple) -> str:
    loc = tuple(err["loc"])
    typ = err["type"]
    ctx = err.get("ctx") or {}
    val = err.get("input")
    problem = ctx.get("error")
    if isinstance(problem, KeyProblem):
        full = (*where, *loc, *(problem.key.split(".") if problem.key else ()))
        return f"{source}: {key_text(full)} = {value_text(problem.value)} is invalid; allowed: {problem.allowed}"
    if typ == "value_error" and problem is not None:
        return f"{source}: {key_text((*where, *loc), leaf_is_table=not loc or isinstance(val, Mapping))} " \
               f"is invalid: {problem}"
    if typ == "assertion_error" and problem is not None:
        return f"{source}: {key_text((*where, *loc))} is invalid: {problem}"
    parent, info = _field_at(model, loc)
    full = (*where, *loc)
    if typ == "extra_forbidden":  # (_field_at gives the table holding the unknown key as ``parent``)
        allowed = _fields(parent) if parent is not None else []
        if not where and len(loc) == 1 and parent is not None and _all_tables(parent):
            return f"{source}: unknown section {key_text(loc, leaf_is_table=True)}; allowed sections: " \
                   f"{', '.join(allowed)}"
        table = key_text((*where, *loc[:-1]), leaf_is_table=True) if (where or loc[:-1]) else "the top level"
        return f"{source}: unknown key {printable(repr(str(loc[-1])), 80)} in {table}; allowed keys: " \
               f"{', '.join(allowed)}"
    if typ == "missing":  # (the input of a "missing" error is the table it is missing from)
        is_table = _is_model(_unwrap(info.annotation) if info else None)
        return f"{source}: {key_text(full, leaf_is_table=is_table)} is missing; allowed: {_allowed(info, _leaf(full))}"
    is_table = isinstance(val, Mapping) or _is_model(_unwrap(info.annotation) if info else None)
    if typ == "literal_error":
        choices = _literal_values(info.annotation) if info is not None else None
        allowed = ", ".join(map(str, choices)) if choices else ctx.get("expected")
        return f"{source}: {key_text(full)} = {value_text(val)} is invalid; allowed: {allowed}"
    reason = err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    if typ in ("model_type", "dict_type"):
        reason = "not a table"
    shown = key_text(full, leaf_is_table=is_table)
    allowed = _allowed(info, _leaf(full))
    if is_table and isinstance(val, Mapping):
        return f"{source}: {shown} is invalid ({reason}); allowed: {allowed}"
    if is_table:
        return f"{source}: {shown} must be a table; got {value_text(val)}; allowed: {allowed}"
    return f"{source}: {shown} = {value_text(val)} is invalid ({_short(typ, reason)}); allowed: {allowed}"


def _leaf(loc: tuple) -> str:
    """The name a range is written with: the last key (``sigma``), with its index (``w[1]``)."""
    out = ""
    for p in reversed(loc):
        if isinstance(p, int):
            out = f"[{p}]" + out
        else:
            return str(p) + out
    return "value"


def _short(typ: str, reason: str) -> str:
    return {"greater_than_equal": "below the minimum", "greater_than": "at or below the minimum",
            "less_than_equal": "above the maximum", "less_than": "at or above the maximum",
            "finite_number": "not a finite number", "too_short": "too short", "too_long": "too long",
            "float_type": "not a number", "int_type": "not an integer", "string_type": "not a string",
            "bool_type": "not true or false", "list_type": "not an array"}.get(typ, reason)


def _literal_values(tp):
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            if typing.get_origin(_unwrap(a)) is Literal:
                return typing.get_args(_unwrap(a))
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def _all_tables(model) -> bool:
    for f in model.model_fields.values():
        tp = _unwrap(f.annotation)
        if not (_is_model(tp) or typing.get_origin(tp) in (dict, list)):
            return False
    return True


def _is_model(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _field_at(model, loc: tuple):
    """(the model holding the last key of ``loc``, that key's FieldInfo) by walking the schema's
    types; (None, None) where the walk leaves the schema (free-form tables)."""
    tp: Any = model
    parent, info = None, None
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            f = _by_key(tp, part)
            if f is None:
                return tp, None
            parent, info, tp = tp, f, f.annotation
            continue
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
            tp = args[0]
            info = FieldInfo.from_annotation(tp) if not _is_model(_unwrap(tp)) else info
        elif origin in (dict, Mapping) and len(args) == 2:
            tp = args[1]
            info = FieldInfo.from_annotation(tp) if not _is_model(_unwrap(tp)) else info
        else:
            return parent, info
    return parent, info


def _by_key(model, key):
    for name, f in model.model_fields.items():
        if key in (name, f.alias):
            return f
    return None


def _unwrap(tp):
    """``Optional[X]``/``X | None`` and ``Annotated[X, ...]`` -> X."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def _flip(op: str) -> str:
    return {">=": "<=", ">": "<"}[op]


def _allowed(info: FieldInfo | None, key=None) -> str:
    """What a field accepts, in words: type, range, enum values, description."""
    if info is None:
        return "see the documentation of this file"
    base = _type_words(info.annotation)
    lo = hi = None
    lo_op = hi_op = ""
    extra = []
    min_len = max_len = None
    metas = list(info.metadata)
    ann = info.annotation
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = rest[0] if len(rest) == 1 else ann
    description = info.description
    if typing.get_origin(ann) is typing.Annotated:
        for m in typing.get_args(ann)[1:]:
            metas.extend(getattr(m, "metadata", [m]))
            description = description or getattr(m, "description", None)
    for m in metas:
        if isinstance(m, at.Ge):
            lo, lo_op = m.ge, ">="
        elif isinstance(m, at.Gt):
            lo, lo_op = m.gt, ">"
        elif isinstance(m, at.Le):
            hi, hi_op = m.le, "<="
        elif isinstance(m, at.Lt):
            hi, hi_op = m.lt, "<"
        elif isinstance(m, at.MinLen) and m.min_length:
            min_len = m.min_length
        elif isinstance(m, at.MaxLen):
            max_len = m.max_length
    if min_len is not None and min_len == max_len:
        extra.append(f"exactly {min_len}")
    elif min_len is not None:
        extra.append(f"at least {min_len}")
    elif max_len is not None:
        extra.append(f"at most {max_len}")
    name = key or "value"
    rng = ""
    if lo is not None and hi is not None:
        rng = f"{lo:g} {_flip(lo_op)} {name} {hi_op} {hi:g}"
    elif lo is not None:
        rng = f"{name} {lo_op} {lo:g}"
    elif hi is not None:
        rng = f"{name} {hi_op} {hi:g}"
    if rng and base == "a finite number":
        text = rng
    elif rng:
        text = f"{base}, {rng}"
    else:
        text = base
    if extra:
        text += ", " + ", ".join(extra)
    if description:
        text += f" ({description})"
    return text


def _type_words(tp) -> str:
    tp0 = tp
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return "one of " + one_of(repr(a) if isinstance(a, str) else a for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_words(a) for a in args if a is not type(None))
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a string"
    if _is_model(tp):
        return f"a table with keys {', '.join(_fields(tp))}"
    if origin in (list, tuple):
        return f"an array of {_plural(_type_words(args[0]) if args else 'values')}"
    if origin in (dict, Mapping):
        return f"a table of name = {_type_words(args[1]) if len(args) == 2 else 'value'}"
    if tp is Any or tp0 is Any:
        return "a value"
    return getattr(tp, "__name__", str(tp))


def _plural(words: str) -> str:
    for a, b in (("a finite number", "finite numbers"), ("an integer", "integers"), ("a string", "strings"),
                 ("true or false", "booleans")):
        if words.startswith(a):
            return b + words[len(a):]
    return words


# ------------------------------------------------------------------ command-line options
def check_option(name: str, value: int | None, low: int, high: int | None = None) -> None:
    """Refuse (ConfigError naming the option, its value and the allowed range) an integer option
    outside [low, high]; None (not given) passes."""
    if value is not None and not (low <= value and (high is None or value <= high)):
        allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
        raise ConfigError(f"{name} {value}: allowed: {allowed}")


def check_output_file(option: str, path) -> None:
    """Refuse (ConfigError naming the option and path) an output file that cannot be written
    where it is: a folder at that path, or a file where one of its folders should be. Checked
    before the work whose result goes there, so that no result is computed and then lost."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} {p}: is a folder; allowed: a file path")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {p}: {parent} is a file, not a folder; allowed: a path in a folder")
            break
