"""The closed loop: plant and sensors on one side of a link, the flight code on the other.

Lockstep: the plant owns simulated time. Each cycle the runner samples the sensors at plant
time t, sends SENSORS stamped t, waits for the COMMAND that answers it, holds that command
over [t, t + 1/rate) while the plant integrates, and repeats until touchdown or ``t_max_s``.
"""
from __future__ import annotations

import csv
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import analysis, protocol as p, record_columns
from harness.faults import FaultSet
from harness.cycle import Cycle, load_cycle_kernels
from harness.frames import G0, MOON_GM, SiteFrame, quat_rotate
from harness.lander import load_lander
from harness.errors import ConfigError
from harness.link import LOST_COMMAND_POLICIES, CommandLost, FlightLink, LinkError, LinkLog
from harness.params import ParamSpec, check_params, load_param_table
from harness.safetext import printable
from harness.plant import STATE_FIELDS, ActuatorCommand, Plant, initial_state
from harness.scenario import Scenario
from harness.terrain import flat
from harness.transports.base import Transport, TransportError
from sensor_models.imu import Imu
from sensor_models.lrf import LaserRangefinder

# Telemetry columns recorded once per flight-code cycle (truth from the plant, the rest as sent/received).
COLUMNS = (
    "t_s", "altitude_m", "v_up_mps", "v_horizontal_mps", "tilt_deg", "mass_kg", "thrust_n",
    "throttle_cmd", "engine_on", "mode", "lrf_range_m", "lrf_valid", "lrf_new", "est_alt_m",
    "truth_alt_site_m", "lrf_status", "lrf_innovation_m", "gravity_mps2",
)

# where the truth record's columns are (the plant's STATE_FIELDS)
_T, _R, _V, _Q, _MASS, _THRUST, _AGL = (STATE_FIELDS.index(f) for f in ("t_s", "r_x", "v_x", "q_w", "mass_kg",
                                                                         "thrust_n", "altitude_agl_m"))

OUTCOMES = ("landed", "off-site", "hard-landing", "crashed", "timeout", "link-failure")


@dataclass
class Touchdown:
    """State at the contact instant: speeds in m/s (vertical positive down), tilt in deg."""

    t_s: float
    v_vertical: float
    v_horizontal: float
    tilt_deg: float
    position_error_m: float
    propellant_kg: float


@dataclass
class FlightResult:
    """Everything one descent produced. ``telemetry`` maps COLUMNS to numpy arrays."""

    scenario: Scenario
    rig: str
    firmware: str
    outcome: str
    telemetry: dict[str, np.ndarray]
    touchdown: Touchdown | None
    link_counters: dict[str, int]
    flight_counters: dict[str, int]
    link_stats: dict[str, float]
    wall_time_s: float
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    thrust_max_n: float = 0.0
    artifacts: Path | None = None
    params_refused: list[str] = field(default_factory=list)  # optional parameters refused (not applied)
    link_last_error: str | None = None  # why the harness's decoder last dropped a frame (None: it never did)
    nonfinite_commands: int = 0  # plant steps flown under a NaN or infinite throttle or torque (read as 0)

    @property
    def landed(self) -> bool:
        return self.outcome == "landed"

    @property
    def sim_time_s(self) -> float:
        t = self.telemetry["t_s"]
        return float(t[-1]) if t.size else 0.0

    @property
    def real_time_factor(self) -> float:
        return self.sim_time_s / self.wall_time_s if self.wall_time_s > 0 else math.inf

    # analysis ------------------------------------------------------------------------------
    def deceleration_margin(self) -> np.ndarray:
        tm = self.telemetry
        return analysis.deceleration_margin(tm["altitude_m"], -tm["v_up_mps"], tm["mass_kg"],
                                            self.thrust_max_n, tm["gravity_mps2"],
                                            v_touchdown=self.scenario.envelope.v_vertical_max)

    def point_of_no_return(self) -> dict | None:
        """First instant after which even full thrust could no longer slow the lander to the
        envelope's vertical touchdown speed above the surface (None if it never happened)."""
        if self.outcome == "landed":
            return None
        tm = self.telemetry
        i = analysis.point_of_no_return(tm["t_s"], self.deceleration_margin())
        if i is None:
            return None
        return {"t_s": float(tm["t_s"][i]), "altitude_m": float(tm["altitude_m"][i]),
                "v_down_mps": float(-tm["v_up_mps"][i])}

    def first_valid_lrf(self) -> dict | None:
        tm = self.telemetry
        idx = np.nonzero(tm["lrf_valid"] > 0)[0]
        if not idx.size:
            return None
        i = int(idx[0])
        return {"t_s": float(tm["t_s"][i]), "altitude_m": float(tm["altitude_m"][i]),
                "v_down_mps": float(-tm["v_up_mps"][i])}

    def lrf_ignored(self) -> dict | None:
        """Valid LRF samples the flight code did not accept: from when, for how long, how many."""
        tm = self.telemetry
        status = tm["lrf_status"]
        bad = (tm["lrf_valid"] > 0) & (tm["lrf_new"] > 0) & ((status == p.LrfStatus.REJECTED)
                                                             | (status == p.LrfStatus.LATCHED_OUT))
        idx = np.nonzero(bad)[0]
        if not idx.size:
            return None
        return {"from_t_s": float(tm["t_s"][idx[0]]), "to_t_s": float(tm["t_s"][idx[-1]]),
                "samples": int(idx.size), "altitude_m": float(tm["altitude_m"][idx[0]])}

    def max_estimate_error(self) -> dict | None:
        tm = self.telemetry
        if not tm["t_s"].size:
            return None
        err = tm["est_alt_m"] - tm["truth_alt_site_m"]
        known = np.isfinite(err)  # cycles whose TELEMETRY (the estimate) was lost or never sent: no error known
        if not known.any():
            return None
        i = int(np.argmax(np.where(known, np.abs(err), -1.0)))
        return {"t_s": float(tm["t_s"][i]), "error_m": float(err[i])}

    def _requirement_lines(self) -> list[str]:
        """The verdict's lines for the scenario's [requirements]: robustness of each (post-processing
        of the telemetry with harness.requirements, after the run)."""
        from harness.errors import ConfigError
        from harness.requirements import resolve, robustness_of, signals

        t, sig = signals(self)
        lines = ["requirements (robustness > 0 held, < 0 violated, in the requirement's unit):"]
        for req in self.scenario.requirements:
            name, formula, unit = resolve(req, self.scenario)
            try:
                lines.append("  " + robustness_of(t, sig, formula, name, unit).line())
            except ConfigError as exc:
                lines.append(f"  {name}: not evaluable on this run: {exc}")
        return lines

    def findings(self) -> dict:
        """The verdict's diagnoses of the telemetry, each computed once: ``first_valid_lrf``,
        ``lrf_ignored``, ``max_estimate_error`` and ``point_of_no_return`` (the methods' results)."""
        return {"first_valid_lrf": self.first_valid_lrf(), "lrf_ignored": self.lrf_ignored(),
                "max_estimate_error": self.max_estimate_error(), "point_of_no_return": self.point_of_no_return()}

    def verdict(self, findings: dict | None = None) -> str:
        """One paragraph a GNC engineer can act on: outcome, touchdown numbers, diagnosis.
        ``findings``: this result's ``findings()`` when the caller has them already."""
        found = findings if findings is not None else self.findings()
        s = self.scenario
        env = s.envelope
        lines = [f"{s.name} on {self.rig} ({self.firmware}): {self.outcome.upper()}"]
        td = self.touchdown
        if td:
            lines.append(f"touchdown at t={td.t_s:.2f} s: vertical {td.v_vertical:.2f} m/s "
                         f"(limit {env.v_vertical_max}), horizontal {td.v_horizontal:.2f} m/s "
                         f"(limit {env.v_horizontal_max}), tilt {td.tilt_deg:.1f} deg (limit {env.tilt_max_deg}), "
                         f"{td.position_error_m:.0f} m from the site, {td.propellant_kg:.1f} kg propellant left")
        fv = found["first_valid_lrf"]
        lines.append("first valid LRF sample: " + (f"t={fv['t_s']:.2f} s at {fv['altitude_m']:.0f} m, "
                                                   f"{fv['v_down_mps']:.1f} m/s down" if fv else "never"))
        ig = found["lrf_ignored"]
        if ig:
            lines.append(f"LRF valid but rejected by the flight code from t={ig['from_t_s']:.2f} s "
                         f"({ig['altitude_m']:.0f} m) to t={ig['to_t_s']:.2f} s: {ig['samples']} samples")
        ee = found["max_estimate_error"]
        if ee:
            lines.append(f"largest altitude-estimate error {ee['error_m']:+.0f} m at t={ee['t_s']:.2f} s")
        pnr = found["point_of_no_return"]
        if pnr:
            lines.append(f"point of no return at t={pnr['t_s']:.2f} s: {pnr['altitude_m']:.0f} m up, "
                         f"{pnr['v_down_mps']:.1f} m/s down; from then on even full thrust "
                         f"({self.thrust_max_n:.0f} N) could not slow it to {env.v_vertical_max} m/s "
                         f"above the surface")
        if s.requirements:
            lines.extend(self._requirement_lines())
        if self.params_refused:
            lines.append(f"flight code refused {len(self.params_refused)} optional parameter(s), not applied: "
                         + "; ".join(self.params_refused))
        ls = self.link_stats
        if ls.get("lost_commands"):
            lines.append(f"lost COMMANDs: {ls['lost_commands']} (policy {ls.get('lost_command_policy', 'hold')}; "
                         f"late COMMANDs discarded: {ls.get('late_commands', 0)})")
        bad = {k: v for k, v in self.link_counters.items() if k != "frames_ok" and v}
        fbad = {k: v for k, v in self.flight_counters.items() if k not in ("rx_frames_ok", "fault_flags") and v}
        if bad or fbad:
            lines.append(f"link errors: harness side {bad or 'none'}, flight-code side {fbad or 'none'}"
                         + (f"; the harness last dropped a frame because: {self.link_last_error}"
                            if bad and self.link_last_error else ""))
        if self.nonfinite_commands:
            lines.append(f"flight code commanded a NaN or infinite throttle or torque: the plant flew "
                         f"{self.nonfinite_commands} step(s) with it read as 0 (then clamped to its range)")
        if self.flight_counters.get("fault_flags"):
            lines.append(f"flight code reports fault flags 0x{self.flight_counters['fault_flags']:08x} "
                         f"in its last TELEMETRY (bits defined by the flight code)")
        if self.error:
            lines.append(f"error: {self.error}")
        lines.extend(self.notes)
        return "\n  ".join(lines)

    # artefacts -----------------------------------------------------------------------------
    def save(self, folder: Path | str) -> Path:
        """Write telemetry.csv, telemetry.npz and summary.txt into ``folder`` (the link log is already there)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tm = self.telemetry
        np.savez_compressed(folder / "telemetry.npz", **tm)
        with open(folder / "telemetry.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(COLUMNS)
            w.writerows(zip(*(tm[c].tolist() for c in COLUMNS)))
        (folder / "summary.txt").write_text(self.verdict() + "\n")
        self.artifacts = folder
        return folder


def envelope_outcome(td: Touchdown, env) -> str:
    """The outcome class of a touchdown, from the whole envelope (docs/scenarios.md, "Outcome classes").

    With f = ``env.hard_landing_factor`` and every bound inclusive (a value equal to a limit is inside):

    * ``crashed``: vertical speed > f * v_vertical_max, or horizontal speed > f * v_horizontal_max,
      or tilt > f * tilt_max_deg (or a non-finite value: nothing known about it is survivable);
    * ``hard-landing``: not crashed, and at least one of the three beyond its limit;
    * ``off-site``: all three within their limits, but farther than ``env.distance_max_m`` from the site;
    * ``landed``: all four within their limits.
    """
    f = env.hard_landing_factor
    speeds_tilt = ((td.v_vertical, env.v_vertical_max), (td.v_horizontal, env.v_horizontal_max),
                   (td.tilt_deg, env.tilt_max_deg))
    if not all(math.isfinite(x) for x in (td.v_vertical, td.v_horizontal, td.tilt_deg, td.position_error_m)):
        return "crashed"
    if any(value > f * limit for value, limit in speeds_tilt):
        return "crashed"
    if any(value > limit for value, limit in speeds_tilt):
        return "hard-landing"
    return "off-site" if td.position_error_m > env.distance_max_m else "landed"


def config_values(scenario: Scenario, state0, site_r_mci, lander, table: dict[str, ParamSpec],
                  site: SiteFrame) -> list[tuple[ParamSpec, float]]:
    """The CONFIG frames for a scenario: initial estimate (truth + nav error), lander, user params."""
    err = scenario.nav_error
    r_hat = [c / math.sqrt(sum(x * x for x in state0.r_mci)) for c in state0.r_mci]
    r_est = [state0.r_mci[i] + err.altitude_m * r_hat[i] for i in range(3)]
    v_est = [state0.v_mci[i] + err.v_up_mps * r_hat[i] + err.v_east_mps * site.east_mci[i] for i in range(3)]
    values = {
        "NAV_R0_X": r_est[0], "NAV_R0_Y": r_est[1], "NAV_R0_Z": r_est[2],
        "NAV_V0_X": v_est[0], "NAV_V0_Y": v_est[1], "NAV_V0_Z": v_est[2],
        "NAV_Q0_W": state0.q_mci_body[0], "NAV_Q0_X": state0.q_mci_body[1],
        "NAV_Q0_Y": state0.q_mci_body[2], "NAV_Q0_Z": state0.q_mci_body[3],
        "MASS0": state0.mass_kg,
        "SITE_R_X": site_r_mci[0], "SITE_R_Y": site_r_mci[1], "SITE_R_Z": site_r_mci[2],
        "THRUST_MAX": lander.thrust_max_n, "ISP": lander.isp_s,
        "THROTTLE_MIN": lander.throttle_min, "GM": MOON_GM,
        # sensor mounting from the lander file, so the flight code's LRF geometry is the plant's
        "LRF_BORE_X": lander.lrf_boresight_body[0], "LRF_BORE_Y": lander.lrf_boresight_body[1],
        "LRF_BORE_Z": lander.lrf_boresight_body[2],
        "LRF_POS_X": lander.lrf_position_body_m[0], "LRF_POS_Y": lander.lrf_position_body_m[1],
        "LRF_POS_Z": lander.lrf_position_body_m[2],
    }
    values.update(scenario.flight_params)
    check_params(scenario.flight_params, table, f"scenario {scenario.name!r}")
    sent = [(table[k], v) for k, v in values.items() if k in table]
    names = {spec.name for spec, _ in sent}
    missing = [n for n in scenario.required_params if n not in names]
    if missing:
        raise ConfigError(f"scenario {scenario.name!r}: required_params {', '.join(missing)} are not sent to "
                          f"the flight code; allowed: parameters the harness sends ({', '.join(sorted(names))})")
    return sent


def fly(scenario: Scenario, transport: Transport, *, rig: str = "loopback", artifacts: Path | str | None = None,
        cycle_timeout_s: float = 2.0, stall_cycles: int = 25, hello_timeout_s: float = 10.0,
        source_dir=None, pacing: str = "lockstep", lost_command: str | None = None,
        round_trips: bool = True) -> FlightResult:
    """Fly one scenario against the flight code behind ``transport`` and return its result.

    A transport that dies, or flight code that stops answering, ends the run with outcome
    ``link-failure`` and an error naming the cause; telemetry and link log up to then are kept.
    ``pacing="realtime"`` holds each cycle to the wall clock (for flight code on its own clock).
    ``lost_command``: what a cycle without its COMMAND does (``LOST_COMMAND_POLICIES``; the
    scenario's ``lost_command`` wins; default ``hold``): keep the last COMMAND, cut the engine
    for that cycle (``engine-off``), or end the run as link-failure (``fail``).
    ``round_trips=False``: the wall time of each exchange is not kept (``link_stats``'
    ``round_trip_median_s`` and ``round_trip_p99_s`` are then NaN; a campaign records neither).
    """
    policy = scenario.lost_command or lost_command or "hold"
    if policy not in LOST_COMMAND_POLICIES:
        raise ConfigError(f"lost_command = {policy!r}; allowed: {', '.join(LOST_COMMAND_POLICIES)}")
    load_cycle_kernels()  # once per process (numba compile or cache load, ~1-10 s): not this flight's time
    record_columns.load()  # the record's C conversion: the same (a compile on first use)
    wall0 = time.perf_counter()
    folder = Path(artifacts) if artifacts else None
    faults = FaultSet(scenario.faults, rng=np.random.default_rng([scenario.seed, 0xFA17]))
    transport = faults.wrap_transport(transport)
    faulty = bool(faults.faults)  # no per-cycle fault hooks at all when the scenario has none
    hooks = faults.hooks          # and of those, only the ones some fault has
    imu_faults, command_faults, actuator_faults = "imu" in hooks, "command" in hooks, "actuator" in hooks
    plant_faults = "plant" in hooks
    log = LinkLog(folder / "link.log" if folder else None)
    link = FlightLink(transport, cycle_timeout_s=cycle_timeout_s, stall_cycles=stall_cycles, log=log,
                      keep_round_trips=round_trips)
    table = load_param_table(source_dir)

    rng = np.random.default_rng(scenario.seed)
    lander = load_lander(scenario.lander)
    site = SiteFrame()
    terrain = scenario.terrain(site) if scenario.terrain else flat(site)
    start_r = site.surface_point_mci(scenario.downrange_m, scenario.crossrange_m, 0.0)
    start_ground_m = terrain.height_at(start_r)
    state0 = initial_state(site, lander, altitude_m=scenario.altitude_m + start_ground_m,
                           downrange_m=scenario.downrange_m, crossrange_m=scenario.crossrange_m,
                           v_east=scenario.v_east_mps, v_north=scenario.v_north_mps, v_up=scenario.v_up_mps,
                           tilt_rad=math.radians(scenario.tilt_deg), propellant_kg=scenario.propellant_kg)
    plant = Plant(lander, terrain, state0)
    lrf = LaserRangefinder(scenario.lrf, rng, lander.lrf_boresight_body, lander.lrf_position_body_m)
    imu = Imu(scenario.imu, rng)
    site_h = terrain.height_at(site.to_mci(0.0, 0.0, 0.0))
    site_r = site.to_mci(0.0, 0.0, site_h)
    site_radius = math.sqrt(sum(c * c for c in site_r))

    cycle = Cycle(plant, imu)
    truth, state_vector = cycle.state_view, plant.kernel_arrays()[0]  # (the latter a view of cycle.block)
    imu.read()  # the first reading (nothing integrated yet: flagged invalid); later ones end each cycle
    ground = plant.terrain

    rows: list[tuple] = []  # per cycle: what the truth record (cycle.history) does not hold
    record = rows.append
    new_tuple = tuple.__new__  # builds a NamedTuple (Sensors, ActuatorCommand) without its Python-level __new__
    LRF_VALID, IMU_VALID, LRF_NEW = p.SENSORS_LRF_VALID, p.SENSORS_IMU_VALID, p.SENSORS_LRF_NEW
    ENGINE_ON = p.COMMAND_ENGINE_ON
    exchange, exchange_reading = link.exchange, link.exchange_reading
    advance = cycle.advance
    dt = 1.0 / scenario.flight_rate_hz
    n_sub = scenario.plant_substeps
    dt_sub = dt / n_sub
    dt_us = int(round(dt * 1e6))
    outcome, error, touchdown = "timeout", None, None
    command = p.Command(0.0, (0.0, 0.0, 0.0), 0, 0, 0)
    applied = command            # what the plant flies this cycle (the policy's choice when a COMMAND is lost)
    lost_commands = 0
    hold = policy == "hold"
    firmware = "unknown"
    n_steps = int(round(scenario.t_max_s / dt))
    cycle.keep_history(n_steps + 2)  # the truth record: the plant state at each cycle's start
    # with no fault hook between a COMMAND and the plant, the in-process rig hands the regular
    # COMMAND to the compiled cycle in the same C call (the same kernel advance() calls)
    entry = None if (imu_faults or command_faults or actuator_faults or plant_faults) else cycle.c_entry()
    link.bind_reading(cycle.reading, None if entry is None else (entry, cycle.block, cycle.history, dt_sub, n_sub))
    then = -1  # the row the compiled cycle writes when it is handed the COMMAND, -1: not handed
    lrf_last = None  # the LRF reading of the last cycle, whose SENSORS fields are worked out
    late_frames = 0
    loop_wall_s = math.nan
    if pacing not in ("lockstep", "realtime"):
        raise ValueError(f"pacing must be 'lockstep' or 'realtime', not {pacing!r}")
    realtime = pacing == "realtime"
    try:
        hello = link.wait_hello(hello_timeout_s)
        firmware = f"{printable(hello.firmware_name, 40)} 0x{hello.firmware_id:08x}"
        link.configure(config_values(scenario, state0, site_r, lander, table, site),
                       required=frozenset(scenario.required_params))
        step = 0
        lrf_event_t_s = -math.inf
        wall_start = time.perf_counter()
        loop_start = wall_start
        while True:
            t_s = truth[_T]  # the plant's state at t (STATE_FIELDS), where the compiled cycle keeps it
            t_us = step * dt_us
            altitude = truth[_AGL]  # the plant's, when its kernel keeps it (flat terrain)
            if altitude != altitude:
                altitude = plant.altitude_agl()
            # the LRF's reading cannot change before lrf_event_t_s (s): until then the last one stands
            if t_s >= lrf_event_t_s:  # (the samples due by t_s from the plant's state vector at t_s)
                lrf_reading = lrf.update_from_vector(t_s, state_vector, ground)
                lrf_event_t_s = lrf.next_event_t_s
            lrf_r = lrf_reading  # (the faults may change what the flight code gets of it)
            if faulty:
                faults.update(t_s, altitude, command.mode)
                lrf_r = faults.lrf(lrf_r)
            if lrf_r is not lrf_last:  # (a reading is immutable: the one held since the last cycle has the same fields)
                lrf_last = lrf_r
                lrf_valid, lrf_new = lrf_r.valid, lrf_r.new
                lrf_flags = (LRF_VALID if lrf_valid else 0) | (LRF_NEW if lrf_new else 0)
                lrf_range = lrf_r.range_m if lrf_valid else 0.0
                lrf_t_us = round(lrf_r.sample_t_s * 1e6) if (lrf_valid or lrf_new) else 0
                lrf_recorded = lrf_r.range_m if lrf_valid else math.nan
            if realtime:
                lag = wall_start + step * dt - time.perf_counter()
                if lag > 0:
                    time.sleep(lag)
            if imu_faults:
                imu_r = imu.reading()
                faulted = faults.imu(imu_r)
                if faulted is not imu_r:  # the accumulators follow the increments actually reported
                    imu_r = imu.report(faulted)
                dv, dtheta, imu_dt, imu_valid, dv_accum, dtheta_accum = imu_r
                answer = exchange(new_tuple(p.Sensors, (dv, dtheta, round(imu_dt * 1e6), lrf_range, lrf_t_us,
                                                        lrf_flags | (IMU_VALID if imu_valid else 0), dv_accum,
                                                        dtheta_accum)), t_us)
            else:  # the reading as the IMU made it, sent from where the compiled cycle wrote it
                if entry is not None:  # the history row this cycle writes (cycle.next_row), none for the last
                    then = step + 1 if step < n_steps else -1
                answer = exchange_reading(lrf_range, lrf_t_us, lrf_flags, t_us, then)
            if command_faults:
                answer = faults.command(answer)
            if realtime and time.perf_counter() > wall_start + (step + 1) * dt:
                late_frames += 1
            if answer is not None:
                command = applied = answer
            else:
                lost_commands += 1
                if not hold:  # engine-off for this cycle (and the 'fail' policy's last row)
                    applied = p.Command(0.0, (0.0, 0.0, 0.0), command.sensors_seq, command.mode, 0)
            # record this cycle (truth at t, what was sent, what came back); derived columns
            # (vertical speed, tilt, ...) are computed for all rows at once after the run
            throttle, torque_body, _sensors_seq, mode, flags = applied  # (one unpack, not four attribute reads)
            record((altitude, throttle, flags & ENGINE_ON, mode, lrf_recorded, lrf_valid, lrf_new))
            if answer is None and policy == "fail":
                raise CommandLost(f"COMMAND lost in cycle {step} (t={t_us / 1e6:.3f} s, SENSORS seq "
                                  f"{link.last_sent[1] if link.last_sent else '?'}) and the lost-command "
                                  f"policy is 'fail'; {link.describe_last_frames()}")
            if step >= n_steps:
                outcome = "timeout"
                break
            step += 1
            done = link.then_done  # -1 unless exchange_reading handed this COMMAND to the compiled cycle
            if done >= 0:  # the compiled cycle already flew it
                touched = cycle.took(done, None if done == n_sub else new_tuple(
                    ActuatorCommand, (throttle, bool(flags & ENGINE_ON), torque_body)), dt_sub, n_sub)
            else:
                act = new_tuple(ActuatorCommand, (throttle, bool(flags & ENGINE_ON), torque_body))
                if actuator_faults:
                    act = faults.actuator(act)
                if plant_faults:
                    faults.plant_effects(plant)
                touched = advance(act, dt_sub, n_sub)
            if touched:
                touchdown = _touchdown(plant, site)
                outcome = envelope_outcome(touchdown, scenario.envelope)
                break
        loop_wall_s = time.perf_counter() - loop_start
        link.drain()
        link.close()  # here, not only in finally: a link log that cannot take its last records is this run's error
    except (LinkError, TransportError) as exc:
        outcome, error = "link-failure", f"{type(exc).__name__}: {exc}"
        if transport.diagnose is not None:
            error += f" [{transport.diagnose()}]"
    finally:
        link.close()
    tm = _columns(cycle.history[:len(rows)], rows, site_radius)
    _merge_telemetry(tm, link.telemetry_records(), dt_us)
    rt_median, rt_p99 = _median_p99(link.stats.round_trip_s)
    tlm = link.telemetry
    result = FlightResult(
        scenario=scenario, rig=rig, firmware=firmware, outcome=outcome, telemetry=tm, touchdown=touchdown,
        link_counters=link.decoder.counters.as_dict(),
        flight_counters={k: getattr(tlm, k) for k in ("rx_crc_errors", "rx_framing_errors", "rx_length_errors",
                                                      "rx_unknown_msgs", "rx_frames_ok", "cycle_overruns",
                                                      "sensors_gaps", "sensors_rejected", "fault_flags")}
        if tlm else {},
        link_stats={"exchanges": link.stats.exchanges, "missed_cycles": link.stats.missed_cycles,
                    "answers_known_lost": link.stats.answers_known_lost,
                    "late_commands": link.stats.late_commands, "late_frames": late_frames,
                    "lost_commands": lost_commands, "lost_command_policy": policy,
                    "pacing": pacing, "loop_wall_s": loop_wall_s,
                    "round_trip_median_s": rt_median, "round_trip_p99_s": rt_p99,
                    "bytes_tx": log.bytes_tx, "bytes_rx": log.bytes_rx},
        wall_time_s=time.perf_counter() - wall0, error=error, thrust_max_n=lander.thrust_max_n,
        notes=faults.report(),
        params_refused=[r.describe() for r in link.params_refused],
        link_last_error=link.decoder.errors[-1][1] if link.decoder.errors else None,
        nonfinite_commands=plant.nonfinite_command_steps,
    )
    if folder:
        result.save(folder)
    return result


_SENT = ("altitude_m", "throttle_cmd", "engine_on", "mode", "lrf_range_m", "lrf_valid", "lrf_new")


def _sent_columns(rows: list[tuple]) -> dict[str, np.ndarray]:
    """The per-cycle record's _SENT columns as float64 arrays: each value exactly as ``float()``
    takes it (ints and bools exactly, as numpy's float conversion does). In C when the record is
    of floats, ints and bools (harness/record_columns.py), else by numpy's float conversion (a
    fault's row of other types; no compiler)."""
    columns = record_columns.columns_of(rows, len(_SENT))
    if columns is not None:
        return dict(zip(_SENT, columns))
    sent = np.fromiter(itertools.chain.from_iterable(rows), float, len(rows) * len(_SENT)).reshape(-1, len(_SENT))
    return {name: np.ascontiguousarray(sent[:, i]) for i, name in enumerate(_SENT)}


def _dot3(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], nan_free: bool, rows_a=None,
          rows_b=None) -> np.ndarray:
    """Row-wise dot products of 3-vectors given as three columns each (``a``, ``b``), with the
    bits of ``np.einsum("ij,ij->i", A, B)`` on them as (n, 3) arrays (``rows_a``, ``rows_b``:
    those arrays, else stacked from the columns). numpy's summation (x86 SIMD: the products of
    components 0 and 2 added first, then 1, into a zero, so a -0.0 sum comes out +0.0) is done
    here on the columns when the data they come from hold no NaN (``nan_free``: every NaN on the
    way is then one the arithmetic makes, all of the same bits); einsum itself does it
    otherwise (which of two NaNs of different signs a sum keeps depends on its order of operations)."""
    if nan_free:
        out = a[0] * b[0]
        out += a[2] * b[2]
        out += a[1] * b[1]
        out += 0.0
        return out
    return np.einsum("ij,ij->i", np.stack(a, axis=1) if rows_a is None else rows_a,
                     np.stack(b, axis=1) if rows_b is None else rows_b)


def _columns(truth: np.ndarray, rows: list[tuple], site_radius: float) -> dict[str, np.ndarray]:
    """The per-cycle record as COLUMNS arrays: raw truth (``Cycle.history``: the plant's state
    vector at each cycle's start, MCI position, velocity, attitude) turned into vertical and
    horizontal speed, tilt from local up, height above the site; with what was sent and received."""
    col = _sent_columns(rows)
    # time, position, velocity and attitude: one transposing copy, a contiguous row each
    block = np.ascontiguousarray(truth[:, _T:_Q + 4].T)
    r, v = tuple(block[_R:_R + 3]), tuple(block[_V:_V + 3])
    w, x, y, z = block[_Q:_Q + 4]
    rx, ry, rz = r
    nan_free = not block.size or not math.isnan(block.min())  # (a minimum is NaN when any value is)
    rn = np.sqrt(rx * rx + ry * ry + rz * rz)  # |r| (the sum in the order np.linalg.norm's reduction takes)
    up = (rx / rn, ry / rn, rz / rn)  # local up
    v_rows = truth[:, _V:_V + 3]
    v_up = _dot3(v, up, nan_free, v_rows)
    v_h = _dot3(v, v, nan_free, v_rows, v_rows)
    v_h -= v_up * v_up
    np.sqrt(np.maximum(0.0, v_h, out=v_h), out=v_h)
    zb = (2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y))  # body +z in MCI
    cos_tilt = _dot3(zb, up, nan_free)
    tilt = np.degrees(np.arccos(np.clip(cos_tilt, -1.0, 1.0, out=cos_tilt), out=cos_tilt), out=cos_tilt)
    n = len(truth)
    col.update(t_s=block[_T].copy(), mass_kg=np.ascontiguousarray(truth[:, _MASS]),
               thrust_n=np.ascontiguousarray(truth[:, _THRUST]), v_up_mps=v_up, v_horizontal_mps=v_h,
               tilt_deg=tilt, truth_alt_site_m=rn - site_radius, gravity_mps2=MOON_GM / (rn * rn),
               est_alt_m=np.full(n, np.nan), lrf_status=np.zeros(n), lrf_innovation_m=np.full(n, np.nan))
    return {c: col[c] for c in COLUMNS}


def _merge_telemetry(tm: dict, tlm, dt_us: int) -> None:
    """Put the flight code's TELEMETRY (``FlightLink.telemetry_records()``) on the cycle rows by
    its time stamp (held between frames when decimated), so the record does not depend on when
    the bytes happened to arrive."""
    if not tlm.size or not tm["t_s"].size:
        return
    t_tlm = np.ascontiguousarray(tlm["t_us"])  # (one pass through the records, not one per use)
    order = None  # arrival order is time order unless a fault reordered or repeated frames
    if (t_tlm[1:] < t_tlm[:-1]).any():
        order = np.argsort(t_tlm, kind="stable")
        t_tlm = t_tlm[order]
    t_tlm = t_tlm.astype(np.int64)
    rows_us = np.rint(tm["t_s"] * 1e6 / dt_us).astype(np.int64) * dt_us
    columns = (("est_alt_m", "est_alt"), ("lrf_status", "lrf_status"), ("lrf_innovation_m", "lrf_innovation"))
    if order is None and t_tlm.shape == rows_us.shape and (t_tlm == rows_us).all():
        for col, name in columns:  # one TELEMETRY a cycle, each on its own row (the usual case)
            tm[col] = tlm[name].astype(np.float64)
        return
    idx = np.searchsorted(t_tlm, rows_us, side="right") - 1
    have = idx >= 0
    taken = idx[have] if order is None else order[idx[have]]  # records, in arrival order
    for col, name in columns:
        out = np.full(rows_us.shape, np.nan if col != "lrf_status" else 0.0)
        out[have] = tlm[name][taken]
        tm[col] = out


def _median_p99(times: list[float]) -> tuple[float, float]:
    """``np.median`` and ``np.percentile(times, 99)`` (numpy's default, linear interpolation) of
    finite values, the same bits, from one sort (each numpy call partitions the data afresh and
    checks its arguments: ~5x the time); (nan, nan) for none."""
    n = len(times)
    if not n:
        return math.nan, math.nan
    s = record_columns.floats_of(times)
    if s is None:
        s = np.fromiter(times, float, n)
    s.sort()
    h = n // 2
    median = float(s[h]) if n % 2 else (float(s[h - 1]) + float(s[h])) / 2  # np.mean of the middle two
    at = (n - 1) * 0.99  # numpy's virtual index of the 99th percentile
    i = math.floor(at)
    if at >= n - 1:
        return median, float(s[-1])
    gamma, below, above = at - i, float(s[i]), float(s[i + 1])
    step = above - below  # numpy's _lerp
    return median, (above - step * (1 - gamma)) if gamma >= 0.5 else (below + step * gamma)


def _touchdown(plant: Plant, site: SiteFrame) -> Touchdown:
    st = plant.touchdown_state if getattr(plant, "touchdown_state", None) is not None else plant.state
    r, v, q = st.r_mci, st.v_mci, st.q_mci_body
    rn = math.sqrt(sum(c * c for c in r))
    v_up = sum(v[i] * r[i] for i in range(3)) / rn
    v_h = math.sqrt(max(0.0, sum(c * c for c in v) - v_up * v_up))
    zb = quat_rotate(q, (0.0, 0.0, 1.0))
    tilt = math.degrees(math.acos(max(-1.0, min(1.0, sum(zb[i] * r[i] for i in range(3)) / rn))))
    east, north, _up = site.from_mci(r)
    return Touchdown(st.t_s, -v_up, v_h, tilt, math.hypot(east, north), st.propellant_kg)


__all__ = ["fly", "FlightResult", "Touchdown", "COLUMNS", "OUTCOMES", "G0"]
