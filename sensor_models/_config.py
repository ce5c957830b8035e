"""What the sensor configurations share: building one from a TOML table, with errors that name
the source, the key and what is allowed.

Keys and types (unknown keys, strings for numbers, ``true`` for a number, NaN/inf, a vector of
the wrong length) are checked by a schema made from the dataclass's fields (harness/validation.py);
the ranges stay with the class (its ``__post_init__``) and its errors are re-labelled with the
file and the key.
"""
from __future__ import annotations

import functools
import re
from dataclasses import MISSING, fields
from typing import Annotated, Any

from pydantic import Field, create_model

from harness.errors import ConfigError
from harness.validation import Model, key_text, validate

_Vec3 = Annotated[list[float], Field(min_length=3, max_length=3, description="3 numbers, body axes")]
# dataclass annotations (strings under ``from __future__ import annotations``) -> schema types
_TYPES: dict[str, Any] = {"float": float, "int": int, "bool": bool, "str": str, "tuple": _Vec3,
                          "Optional[float]": float | None, "Optional[tuple]": _Vec3 | None,
                          "float | None": float | None, "tuple | None": _Vec3 | None}


@functools.cache
def table_model(cls) -> type[Model]:
    """The schema of a TOML table for the frozen dataclass ``cls``: one key per field."""
    spec = {}
    for f in fields(cls):
        tp = _TYPES.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)), Any)
        default = f.default if f.default is not MISSING else None
        if isinstance(default, tuple):
            default = list(default)
        spec[f.name] = (tp, default)
    return create_model(f"{cls.__name__}Table", __base__=Model, **spec)


def config_table(cls, d: dict, source: str, where: tuple = ()) -> dict:
    """The keyword arguments for ``cls`` from table ``d``: keys and types checked (ConfigError
    naming ``source`` and ``[where] key``), arrays as tuples."""
    m = validate(table_model(cls), d, source, where=where)
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in m.model_dump(include=set(d)).items()}


def build_config(cls, kwargs: dict, source: str, where: tuple = (), base=None):
    """``cls(**kwargs)`` (or ``base`` with ``kwargs`` replaced); a range error raised by the class
    names ``source`` and the key as ``[where] key``."""
    from dataclasses import replace

    try:
        return replace(base, **kwargs) if base is not None else cls(**kwargs)
    except ConfigError as e:
        msg = str(e)
        m = re.match(rf"{re.escape(cls.__name__)}: field (\w+) (.*)", msg, re.S)
        if m:
            raise ConfigError(f"{source}: {key_text((*where, m.group(1)))} {m.group(2)}") from None
        raise ConfigError(f"{source}: {key_text(where, leaf_is_table=True) if where else ''} {msg}") from None


def config_from_dict(cls, d: dict, source: str, sensor: str):
    """``cls(**d)`` for a frozen sensor-config dataclass (``sensor`` names it in messages). An
    unknown key fails naming ``source`` and the allowed keys; TOML arrays become tuples; a range
    error raised by the class is re-labelled with ``source``."""
    return build_config(cls, config_table(cls, d, source), source)
