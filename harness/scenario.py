"""Scenarios: everything that defines one descent (lander, start state, sensors, flight-code parameters).

A scenario is data. The runner turns it into a plant, sensor models and the CONFIG frames
for the flight code. Every named scenario is a TOML file of the library (harness/data/scenarios,
loaded by ``harness.scenario_files.load_scenario``): this module only defines the types. SI units; the start state is given in the landing-site frame
(east, north, up) and converted to MCI by ``harness.frames.SiteFrame``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from sensor_models.imu import ImuConfig
from sensor_models.lrf import LrfConfig


@dataclass(frozen=True)
class Envelope:
    """Touchdown envelope: limits at the contact instant (defaults: Chandrayaan-3 design values).
    The outcome classes built on it (landed, off-site, hard-landing, crashed) are defined in
    ``harness.runner.envelope_outcome`` and tabulated in docs/scenarios.md."""

    v_vertical_max: float = 2.0  # m/s, downward speed
    v_horizontal_max: float = 0.5  # m/s, surface-relative
    tilt_max_deg: float = 12.0  # deg, body +z from local up
    distance_max_m: float = 2000.0  # m, from the site; half the length of Chandrayaan-3's 4 km x 2.4 km zone
    hard_landing_factor: float = 2.0  # beyond the limits but within this many times each: hard-landing


@dataclass(frozen=True)
class NavError:
    """Error of the initial navigation state sent to the flight code (estimate minus truth), site frame."""

    altitude_m: float = 0.0
    v_up_mps: float = 0.0
    v_east_mps: float = 0.0


@dataclass(frozen=True)
class PassCriteria:
    """What counts as a pass: the outcome (``landed`` = inside ``Scenario.envelope``) and,
    optionally, how far from the site (m) and how much propellant must be left (kg)."""

    outcomes: tuple = ("landed",)
    max_position_error_m: float | None = None
    min_propellant_kg: float | None = None

    def check(self, result) -> list[str]:
        """Reasons the result fails these criteria (empty: it passes)."""
        why = []
        if result.outcome not in self.outcomes:
            why.append(f"outcome {result.outcome} not in {', '.join(self.outcomes)}")
        td = result.touchdown
        if td is not None and self.max_position_error_m is not None and td.position_error_m > self.max_position_error_m:
            why.append(f"touchdown {td.position_error_m:.0f} m from the site (limit {self.max_position_error_m:g} m)")
        if td is not None and self.min_propellant_kg is not None and td.propellant_kg < self.min_propellant_kg:
            why.append(f"{td.propellant_kg:.1f} kg propellant left (need {self.min_propellant_kg:g} kg)")
        return why


DISPERSED_FIELDS = ("altitude_m", "downrange_m", "crossrange_m", "v_east_mps", "v_north_mps", "v_up_mps",
                    "tilt_deg", "propellant_kg", "nav_altitude_m", "nav_v_up_mps", "nav_v_east_mps")


@dataclass(frozen=True)
class Dispersion:
    """Dispersion of the start state: per field a 1-sigma (``normal``) or a half-width
    (``uniform``), same units as the Scenario field (``nav_*``: the NavError fields)."""

    distribution: str = "normal"
    sigmas: tuple = ()   # ((field, value), ...) with field in DISPERSED_FIELDS

    def apply(self, scenario: "Scenario", seed: int) -> "Scenario":
        """The scenario with its start state drawn for ``seed`` (and ``seed`` set)."""
        import numpy as np

        rng = np.random.default_rng([seed, 0xD15])
        changes, nav = {}, {}
        for name, s in self.sigmas:
            x = rng.standard_normal() if self.distribution == "normal" else rng.uniform(-1.0, 1.0)
            if name.startswith("nav_"):
                key = name[4:]
                nav[key] = getattr(scenario.nav_error, key) + s * x
            elif name == "propellant_kg":
                base = scenario.propellant_kg
                if isinstance(base, str) or base is None:
                    from harness.lander import load_lander
                    spec = load_lander(scenario.lander)
                    base = spec.propellant_mass_kg if base is None else spec.propellant_load(base)
                changes[name] = max(0.0, base + s * x)
            else:
                changes[name] = getattr(scenario, name) + s * x
        if nav:
            changes["nav_error"] = replace(scenario.nav_error, **nav)
        return replace(scenario, seed=seed, **changes)


@dataclass(frozen=True)
class Scenario:
    """One descent. ``terrain`` is a factory ``(site) -> Terrain``; None means a flat sphere."""

    name: str
    description: str = ""
    lander: str = "reference"
    propellant_kg: float | str | None = "terminal_descent"  # kg, or a load named in the lander file; None: full
    altitude_m: float = 3000.0  # m above the terrain at the start point
    downrange_m: float = 0.0  # m, start east of the site is positive (the lander flies west->east: negative)
    crossrange_m: float = 0.0  # m, north of the site
    v_east_mps: float = 0.0
    v_north_mps: float = 0.0
    v_up_mps: float = -60.0
    tilt_deg: float = 0.0
    terrain: Callable | None = None
    lrf: LrfConfig = field(default_factory=LrfConfig)
    imu: ImuConfig = field(default_factory=ImuConfig)
    nav_error: NavError = field(default_factory=NavError)
    flight_params: dict[str, float] = field(default_factory=dict)
    faults: tuple = ()  # harness.faults objects, applied in order
    flight_rate_hz: float = 50.0
    plant_substeps: int = 1
    t_max_s: float = 400.0
    seed: int = 0
    envelope: Envelope = field(default_factory=Envelope)
    pass_criteria: PassCriteria = field(default_factory=PassCriteria)
    dispersion: Dispersion | None = None   # None: the start state is exact
    mission: str = ""       # the real mission a historical scenario encodes
    variant: str = ""       # flight-code configuration of a library scenario (as_flown, fixed, ...)
    expect: tuple = ()      # outcomes this configuration is expected to produce (library tests, table)
    source: str = ""        # file the scenario was loaded from
    required_params: tuple = ()         # optional flight-code parameters this scenario needs accepted (names)
    lost_command: str | None = None     # lost-command policy (hold, engine-off, fail); None: the rig's
    requirements: tuple = ()            # harness.requirements names or STL formulas the verdict reports

    def passed(self, result) -> bool:
        return not self.pass_criteria.check(result)

    def dispersed(self, seed: int) -> "Scenario":
        """This scenario with its start state drawn from ``dispersion`` for ``seed``."""
        return self.dispersion.apply(self, seed) if self.dispersion else replace(self, seed=seed)

    def with_(self, **changes) -> "Scenario":
        """A copy with some fields changed (``flight_params`` are merged, not replaced)."""
        if "flight_params" in changes:
            changes["flight_params"] = {**self.flight_params, **changes["flight_params"]}
        return replace(self, **changes)


# Named flight-code parameter sets (campaign specs name them: flight_params = "FIXED"): the policy
# HAKUTO-R M1 and M2 flew, and the fix the reference flight code can turn on (= the [variants.fixed]
# flight_params of harness/data/scenarios/ispace-m2.toml; tests/test_scenarios.py checks they agree).
AS_FLOWN = {"LRF_GATE_POLICY": 0, "CONTINGENCY_ENABLE": 0}
FIXED = {"LRF_GATE_POLICY": 1, "CONTINGENCY_ENABLE": 1, "CONTINGENCY_ALT": 2500.0}
