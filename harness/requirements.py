"""Requirements as signal temporal logic (STL) over a descent's telemetry, with robustness.

A requirement is an STL formula over the named signals of ``SIGNALS`` (one sample per
flight-code cycle; time in seconds from the start of the flight; SI units). Its **robustness**
is a number in the requirement's own units: how far the run stayed from breaking it (> 0: held
with that much to spare; < 0: broken by that much; 0: on the edge). The formula is evaluated by
rtamt (discrete-time offline monitor, quantitative semantics): ``a <= b`` has robustness
``b - a``, ``not`` negates, ``and``/``always`` take the minimum, ``or``/``eventually`` the
maximum, ``a implies b`` is ``max(-a, b)``. Time bounds are in seconds (``eventually[0:120]``).

    from harness.requirements import robustness
    r = robustness(result, "touchdown_vertical")            # a library name ...
    r = robustness(result, "always(alt_agl_m < 50 implies v_down_mps < 5)")   # ... or a formula
    r.value, r.unit, r.t_worst_s, r.holds

``LIBRARY`` holds the domain requirements by name; their limits come from the scenario
(``{v_vertical_max}`` and the other ``Envelope`` fields are filled in per run).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from harness.errors import ConfigError

# name -> (unit, meaning). Every signal has one value per telemetry sample.
SIGNALS: dict[str, tuple[str, str]] = {
    "alt_agl_m": ("m", "true height above the terrain (0 on the last sample when the run ended by contact)"),
    "v_down_mps": ("m/s", "true vertical speed, positive down"),
    "v_horizontal_mps": ("m/s", "true horizontal speed over the surface"),
    "tilt_deg": ("deg", "body +z from local up"),
    "throttle_cmd": ("1", "throttle the flight code commanded (0..1)"),
    "throttle_delivered": ("1", "thrust the engine delivered / maximum thrust"),
    "engine_on": ("1", "1 while the engine is commanded on"),
    "est_alt_error_m": ("m", "flight-code altitude estimate minus truth (above the site)"),
    "est_alt_error_abs_m": ("m", "absolute altitude-estimate error"),
    "lrf_valid": ("1", "1 while the LRF delivers a valid range"),
    "lrf_accepted": ("1", "1 when the flight code accepted the last LRF sample"),
    "lrf_wait_s": ("s", "time since the first valid LRF sample with no sample accepted yet (0 before the "
                        "first valid sample and after the first acceptance)"),
    "phase": ("1", "guidance phase number (COMMAND.mode: 0 idle .. 4 touchdown, 5 contingency)"),
    "phase_rank": ("1", "phase in flight order: idle 0, braking 1, approach 2, contingency 2.5, terminal 3, "
                        "touchdown 4"),
    "phase_step": ("1", "phase_rank minus the previous sample's (0 at the first sample; < 0: regression)"),
    "propellant_used_kg": ("kg", "propellant (main + RCS) used since the start"),
    "decel_margin_m": ("m", "height left above full thrust's stopping distance to the envelope's touchdown "
                            "speed (FlightResult.deceleration_margin; < 0: point of no return)"),
    "decel_margin_frac": ("1", "decel_margin_m / max(alt_agl_m, 1 m): share of the remaining height full thrust "
                               "would not need (1: no braking needed, < 0: point of no return)"),
    "td_v_down_mps": ("m/s", "vertical speed at the contact instant (on the last sample; 0 before it)"),
    "td_v_horizontal_mps": ("m/s", "horizontal speed at the contact instant (last sample; 0 before)"),
    "td_tilt_deg": ("deg", "tilt at the contact instant (last sample; 0 before)"),
    "time_s": ("s", "time since the start of the flight"),
}

# Ranks for phase_rank (contingency replaces the approach profile and is followed by terminal).
_PHASE_RANK = {0: 0.0, 1: 1.0, 2: 2.0, 5: 2.5, 3: 3.0, 4: 4.0}


# Identifiers of rtamt's STL grammar that are not signals.
_KEYWORDS = {"always", "eventually", "historically", "once", "since", "until", "unless", "precedes", "implies",
             "and", "or", "not", "iff", "xor", "abs", "sqrt", "exp", "pow", "prev", "next", "rise", "fall",
             "true", "false", "G", "F", "H", "O", "S", "U", "X", "s", "ms", "us", "ns"}


def signals_in(formula: str) -> list[str]:
    """The signals a formula uses; an identifier that is neither a signal nor STL is an error."""
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r"\d+(\.\d*)?([eE][-+]?\d+)?", " ", formula)))
    unknown = sorted(n for n in names if n not in SIGNALS and n not in _KEYWORDS)
    if unknown:
        raise ConfigError(f"requirement {formula!r}: unknown signal {unknown[0]!r}; allowed signals: "
                          f"{', '.join(SIGNALS)}")
    return sorted(n for n in names if n in SIGNALS)


def formula_unit(formula: str) -> str:
    """The unit of a formula's robustness: the units of the signals it uses (" | " between
    different ones; "1" when all are dimensionless)."""
    units = sorted({SIGNALS[s][0] for s in signals_in(formula)} - {"1"})
    return " | ".join(units) or "1"


@dataclass(frozen=True)
class Requirement:
    """A named requirement: an STL formula template (``{v_vertical_max}`` etc. from the scenario's
    envelope), what it means, and the unit its robustness is in (by default ``formula_unit``:
    given only where it says more than the signals' units)."""

    name: str
    formula: str
    description: str
    unit: str = ""

    def __post_init__(self):
        if not self.unit:   # the template's {placeholders} are limits, not signals
            object.__setattr__(self, "unit", formula_unit(re.sub(r"\{\w+\}", " ", self.formula)))

    def formula_for(self, scenario=None) -> str:
        env = _envelope_values(scenario)
        return self.formula.format(**env)


def _envelope_values(scenario) -> dict:
    from harness.scenario import Envelope

    env = scenario.envelope if scenario is not None else Envelope()
    return {"v_vertical_max": env.v_vertical_max, "v_horizontal_max": env.v_horizontal_max,
            "tilt_max_deg": env.tilt_max_deg, "t_max_s": getattr(scenario, "t_max_s", 400.0)}


LIBRARY: dict[str, Requirement] = {r.name: r for r in (
    Requirement("touchdown_vertical", "always(td_v_down_mps <= {v_vertical_max})",
                "vertical speed at contact within the envelope (no touchdown: violated without bound)"),
    Requirement("touchdown_horizontal", "always(td_v_horizontal_mps <= {v_horizontal_max})",
                "horizontal speed at contact within the envelope"),
    Requirement("touchdown_tilt", "always(td_tilt_deg <= {tilt_max_deg})", "tilt at contact within the envelope"),
    Requirement("touchdown_envelope",
                "always((td_v_down_mps <= {v_vertical_max}) and (td_v_horizontal_mps <= {v_horizontal_max}) "
                "and (td_tilt_deg <= {tilt_max_deg}))",
                "all three touchdown limits (the minimum of their margins, each in its own unit)", "m/s | deg"),
    Requirement("deceleration_margin", "always(decel_margin_frac >= 0)",
                "full thrust can always still slow the descent to the touchdown speed within the height left; "
                "robustness: the smallest share of the height it would not need", "share of height"),
    Requirement("no_point_of_no_return", "always((alt_agl_m >= 10) implies (decel_margin_m >= 0))",
                "above 10 m, full thrust can always still stop the descent before the surface (robustness in m, "
                "at most 5 m for a landing: the implication's own floor near 10 m)"),
    Requirement("lrf_accepted_after_acquisition", "always(lrf_wait_s <= 5)",
                "the flight code accepts an LRF sample within 5 s of the first valid one"),
    Requirement("throttle_within_limits", "always((throttle_cmd >= 0) and (throttle_cmd <= 1))",
                "commanded throttle inside [0, 1]"),
    Requirement("no_phase_regression", "always(phase_step >= 0)",
                "the guidance phase never goes back (idle, braking, approach, contingency, terminal, "
                "touchdown)", "phase ranks"),
    Requirement("touchdown_within_t_max", "eventually[0:{t_max_s}](alt_agl_m <= 0.5)",
                "contact (height <= 0.5 m) before the scenario's time limit"),
    Requirement("estimate_error_near_ground", "always((alt_agl_m <= 100) implies (est_alt_error_abs_m <= 20))",
                "below 100 m the altitude estimate is within 20 m of the truth"),
)}

@dataclass(frozen=True)
class Robustness:
    """Robustness of one requirement on one run. ``value`` in ``unit`` (> 0 held, < 0 broken);
    ``t_worst_s``: the instant the requirement came closest to breaking (or broke worst)."""

    requirement: str
    formula: str
    value: float
    unit: str
    t_worst_s: float | None

    @property
    def holds(self) -> bool:
        return self.value >= 0.0

    def line(self) -> str:
        at = f" (worst at t = {self.t_worst_s:.2f} s)" if self.t_worst_s is not None else ""
        verdict = "holds" if self.holds else "VIOLATED"
        return f"{self.requirement}: {verdict}, robustness {self.value:+.4g} {self.unit}{at}  [{self.formula}]"


def check_requirement_list(reqs: list[str]) -> list[str]:
    """A file's list of requirements (library names or STL formulas), each resolvable and each
    once; else a ``validation.KeyProblem`` naming the entry (for the input-file schemas)."""
    from harness.validation import KeyProblem

    for i, r in enumerate(reqs):
        try:
            resolve(r)
        except ConfigError as exc:
            why, _, allowed = str(exc).partition("; allowed: ")
            raise KeyProblem(str(i), r, f"{allowed or 'a library name or an STL formula'} "
                                        f"({why.partition(': ')[2] or why})") from None
    if len(set(reqs)) != len(reqs):
        raise KeyProblem("", reqs, "each requirement once")
    return reqs


def resolve(req: str, scenario=None) -> tuple[str, str, str]:
    """``(name, formula, unit)`` for a library name or a formula text."""
    if req in LIBRARY:
        r = LIBRARY[req]
        return r.name, r.formula_for(scenario), r.unit
    if not isinstance(req, str) or not req.strip():
        raise ConfigError(f"requirement {req!r}: allowed: a library name ({', '.join(LIBRARY)}) or an STL formula")
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", req.strip()):
        raise ConfigError(f"requirement {req!r}: no such requirement in the library; allowed: "
                          f"{', '.join(LIBRARY)}, or an STL formula over the signals {', '.join(SIGNALS)}")
    return req.strip(), req.strip(), formula_unit(req)


# ---------------------------------------------------------------------------------------------
# signals of a flight


def signals(result) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Time (s) and every signal of ``SIGNALS`` for a FlightResult (one value per telemetry sample)."""
    from harness import protocol as p

    tm = result.telemetry
    t = np.asarray(tm["t_s"], dtype=float)
    n = t.size
    v_down = -np.asarray(tm["v_up_mps"], dtype=float)
    valid = (np.asarray(tm["lrf_valid"]) > 0).astype(float)
    accepted = (np.asarray(tm["lrf_status"]) == p.LrfStatus.ACCEPTED).astype(float)
    wait = np.zeros(n)
    iv = np.nonzero(valid > 0)[0]
    if iv.size:
        i0 = int(iv[0])
        ia = np.nonzero(accepted[i0:] > 0)[0]
        i1 = i0 + int(ia[0]) if ia.size else n
        wait[i0:i1] = t[i0:i1] - t[i0]
    mode = np.asarray(tm["mode"], dtype=float)
    rank = np.array([_PHASE_RANK.get(int(m), float(m)) for m in mode]) if n else np.zeros(0)
    step = np.r_[0.0, np.diff(rank)] if n else np.zeros(0)
    err = np.asarray(tm["est_alt_m"], dtype=float) - np.asarray(tm["truth_alt_site_m"], dtype=float)
    mass = np.asarray(tm["mass_kg"], dtype=float)
    thrust_max = result.thrust_max_n or math.inf
    td = result.touchdown
    td_v, td_h, td_tilt = np.zeros(n), np.zeros(n), np.zeros(n)
    if n:
        if td is not None:
            td_v[-1], td_h[-1], td_tilt[-1] = td.v_vertical, td.v_horizontal, td.tilt_deg
        else:  # no contact: the touchdown limits are broken without bound
            td_v[-1] = td_h[-1] = td_tilt[-1] = math.inf
    alt = np.array(tm["altitude_m"], dtype=float)
    margin = np.asarray(result.deceleration_margin(), dtype=float)
    if n and td is not None:
        alt[-1] = 0.0   # the contact instant lies inside the last cycle
    sig = {
        "alt_agl_m": alt,
        "v_down_mps": v_down,
        "v_horizontal_mps": np.asarray(tm["v_horizontal_mps"], dtype=float),
        "tilt_deg": np.asarray(tm["tilt_deg"], dtype=float),
        "throttle_cmd": np.asarray(tm["throttle_cmd"], dtype=float),
        "throttle_delivered": np.asarray(tm["thrust_n"], dtype=float) / thrust_max,
        "engine_on": np.asarray(tm["engine_on"], dtype=float),
        "est_alt_error_m": err,
        "est_alt_error_abs_m": np.abs(err),
        "lrf_valid": valid,
        "lrf_accepted": accepted,
        "lrf_wait_s": wait,
        "phase": mode,
        "phase_rank": rank,
        "phase_step": step,
        "propellant_used_kg": (mass[0] - mass) if n else mass,
        "decel_margin_m": margin,
        "decel_margin_frac": margin / np.maximum(alt, 1.0),
        "td_v_down_mps": td_v,
        "td_v_horizontal_mps": td_h,
        "td_tilt_deg": td_tilt,
        "time_s": t.copy(),
    }
    return t, sig


# ---------------------------------------------------------------------------------------------
# evaluation


def _period_s(t: np.ndarray) -> float:
    if t.size < 2:
        return 1.0
    return float(np.median(np.diff(t)))


@lru_cache(maxsize=64)
def _spec(formula: str, period_us: int, names: tuple[str, ...]):
    import rtamt

    spec = rtamt.StlDiscreteTimeSpecification()
    for n in names:
        spec.declare_var(n, "float")
    spec.set_sampling_period(period_us, "us", 0.1)
    spec.spec = formula
    try:
        spec.parse()
    except Exception as exc:  # noqa: BLE001 - rtamt raises its own exception types for syntax
        raise ConfigError(f"requirement {formula!r}: not a valid STL formula: {exc}") from None
    return spec


def _trace(formula: str, t: np.ndarray, sig: dict) -> np.ndarray:
    """Robustness of ``formula`` at every sample instant (rtamt offline, discrete time)."""
    names = tuple(signals_in(formula))
    spec = _spec(formula, max(1, int(round(_period_s(t) * 1e6))), names)
    data = {"time": t.tolist()}
    for n in names:
        x = np.asarray(sig[n], dtype=float)
        if x.shape != t.shape:
            raise ConfigError(f"signal {n}: {x.size} samples for {t.size} instants")
        data[n] = x.tolist()
    with np.errstate(invalid="ignore"):
        out = spec.evaluate(data)
    return np.array([float(v) for _, v in out], dtype=float)


_OUTER = re.compile(r"^\s*(always|eventually)\s*(\[\s*([^\]:]+)\s*:\s*([^\]]+)\])?\s*\((.*)\)\s*$", re.S)


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        depth += (c == "(") - (c == ")")
        if depth < 0:
            return False
    return depth == 0


def _bound(text: str, formula: str) -> float:
    try:
        return float(text.strip().removesuffix("s"))
    except ValueError:
        raise ConfigError(f"requirement {formula!r}: time bound {text.strip()!r}; allowed: seconds, e.g. "
                          f"eventually[0:120](...)") from None


def robustness_of(t, sig: dict, formula: str, name: str | None = None, unit: str = "") -> Robustness:
    """Robustness at t = 0 of ``formula`` over signals ``sig`` sampled at ``t`` (s, uniform)."""
    t = np.asarray(t, dtype=float)
    if t.size == 0:
        raise ConfigError(f"requirement {name or formula!r}: no telemetry samples to evaluate")
    m = _OUTER.match(formula)
    t_worst = None
    if m and _balanced(m.group(5)):
        # Outer always/eventually at t = 0 is the min/max of the inner formula's robustness over its
        # window (the discrete-time semantics, exact); rtamt evaluates the inner formula. This also
        # gives the instant that decides, and avoids rtamt's O(samples x window) bounded operators.
        inner = _trace(m.group(5), t, sig)
        lo = _bound(m.group(3), formula) if m.group(2) else 0.0
        hi = _bound(m.group(4), formula) if m.group(2) else math.inf
        idx = np.nonzero((t >= t[0] + lo - 1e-9) & (t <= t[0] + hi + 1e-9))[0]
        if not idx.size:
            raise ConfigError(f"requirement {name or formula!r}: the window [{lo:g}, {hi:g}] s holds no sample "
                              f"(the run lasted {t[-1] - t[0]:.2f} s)")
        pick = int(np.argmin(inner[idx]) if m.group(1) == "always" else np.argmax(inner[idx]))
        value = float(inner[idx[pick]])
        t_worst = float(t[idx[pick]])
    else:
        value = float(_trace(formula, t, sig)[0])
    if not unit:
        unit = " | ".join(sorted({SIGNALS[s][0] for s in signals_in(formula)} - {"1"})) or "1"
    return Robustness(name or formula, formula, value, unit, t_worst)


def robustness(result, req: str) -> Robustness:
    """Robustness of requirement ``req`` (a LIBRARY name or a formula) on a FlightResult."""
    name, formula, unit = resolve(req, result.scenario)
    t, sig = signals(result)
    return robustness_of(t, sig, formula, name, unit)


def robustness_all(result, reqs) -> list[Robustness]:
    """Robustness of several requirements on one run (signals computed once)."""
    t, sig = signals(result)
    out = []
    for req in reqs:
        name, formula, unit = resolve(req, result.scenario)
        out.append(robustness_of(t, sig, formula, name, unit))
    return out
