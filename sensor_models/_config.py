"""What the sensor configurations share: building one from a TOML table, with errors that name
the source, the key and what is allowed."""
from __future__ import annotations

from dataclasses import fields

from harness.errors import ConfigError


def config_from_dict(cls, d: dict, source: str, sensor: str):
    """``cls(**d)`` for a frozen sensor-config dataclass. An unknown key fails naming
    ``source`` and the allowed keys; TOML arrays become tuples; a range error raised by the
    class is re-labelled with ``source``."""
    names = {f.name for f in fields(cls)}
    for k in d:
        if k not in names:
            raise ConfigError(f"{source}: unknown key {k!r} for the {sensor}; allowed keys: {', '.join(sorted(names))}")
    try:
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})
    except ConfigError as e:
        raise ConfigError(str(e).replace(cls.__name__, source, 1)) from None
