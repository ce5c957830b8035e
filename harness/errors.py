"""Exception types shared across the fsil harness.

Other modules may add classes here; keep them subclasses of :class:`FsilError`.
"""


class FsilError(Exception):
    """Base class of every error the harness raises on purpose."""


class ConfigError(FsilError, ValueError):
    """A configuration file or value is missing, malformed or out of range.

    The message always names the source (file or ``<memory>``), the field and
    the allowed range, e.g.::

        reference.toml: [engine] throttle_min = 1.2 is out of range; allowed: 0 <= throttle_min <= throttle_max (1.0)
    """
