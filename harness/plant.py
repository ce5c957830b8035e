"""6-DOF plant: a rigid-body lander in the Moon's point-mass gravity field.

State (MCI = Moon-centred inertial, SI units):

    r_mci, v_mci        position / velocity of the centre of mass, m, m/s
    q_mci_body          attitude, scalar first, rotates body -> MCI
    w_body              angular rate of body w.r.t. inertial, body axes, rad/s
    propellant_kg       main-engine propellant left
    rcs_propellant_kg   RCS propellant left
    throttle            actual engine throttle state (fraction of thrust_max)

Equations (integrated with fixed-step classical RK4):

    dr/dt = v
    dv/dt = -GM r / |r|^3 + R(q) F_body / m
    dq/dt = 0.5 q (x) (0, w)                       (renormalised each step)
    dw/dt = I^-1 (tau - w x I w)                   (I taken constant over a step)
    dm_p/dt = -T / (Isp g0)
    dm_rcs/dt = -sum_i |tau_i| / (L_i Isp_rcs g0)

    F_body  = T * d_body, d_body = (sin a cos b, sin a sin b, cos a)
              (a = thrust misalignment, b = its azimuth in the body x-y plane)
    tau     = tau_rcs + r_thrust_body x F_body
    T       = throttle(t) * thrust_max

Engine: the command (engine_on, throttle) gives a target u = clamp(throttle,
throttle_min, throttle_max) when the engine is on and propellant remains, else
0. The actual throttle f follows df/dt = clamp((u - f)/tau_e, -slew, +slew): a
rate-limited first-order lag, solved in closed form inside the step (so RK4
sees the exact thrust history). When the main propellant runs out inside a
step the step is split at the depletion instant and the engine flames out.

RCS: ideal continuous torques (the average of pulse-width-modulated
thrusters), per-axis clamp to +-torque_max; a couple of thrust |tau_i|/L_i
consumes RCS propellant at Isp_rcs; no torque once the RCS propellant is
gone. RCS forces are pure couples (no translation).

Mass properties: m = dry + propellant + rcs_propellant; inertia interpolated
linearly in mass between dry and wet values, re-evaluated whenever the mass has
moved by 0.1 % (INERTIA_REFRESH_REL); the dI/dt and jet-damping torques are
neglected: at most ~1.4 N m s x |w| (docs/models.md derives it).

Contact: the lander touches down when its height above the terrain below
it (altitude_agl) reaches 0. The step in which that happens is re-integrated
from its start to the contact instant (secant iteration on the step length,
|h| < 1 mm), the state there is recorded as ``touchdown_state`` and further
``step`` calls do nothing: the runner ends the run.

Moon rotation (optional): MCI stays inertial, the terrain (Moon-fixed) turns
about +z at 2.66e-6 rad/s; pass ``plant.terrain`` to the sensors.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .frames import G0, MOON_GM, MOON_ROTATION_RATE, SiteFrame, quat_normalize, vcross
from .jit import compile_kernel
from .lander import LanderSpec
from .terrain import FlatTerrain, RotatingTerrain


class ActuatorCommand(NamedTuple):
    """What the flight code commands for the next interval.

    throttle: fraction of thrust_max (the plant applies min/max, lag, slew).
    engine_on: main engine valve.
    torque_body: RCS torque (N m, body axes); clamped per axis by the plant.
    Non-finite values are treated as 0.
    """
    throttle: float = 0.0
    engine_on: bool = False
    torque_body: tuple = (0.0, 0.0, 0.0)


class PlantState(NamedTuple):
    """Plant state at time t_s (MCI, body axes, SI units). Immutable."""
    t_s: float
    r_mci: tuple
    v_mci: tuple
    q_mci_body: tuple
    w_body: tuple
    mass_kg: float
    propellant_kg: float
    rcs_propellant_kg: float = 0.0
    thrust_n: float = 0.0           # actual main-engine thrust at t_s
    throttle: float = 0.0           # actual throttle state (fraction of thrust_max)
    torque_body: tuple = (0.0, 0.0, 0.0)  # RCS torque applied over the last step

    def replace(self, **kw) -> "PlantState":
        return self._replace(**kw)


def _finite(x, default=0.0):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default


def engine_throttle_profile(f0: float, u: float, tau: float, slew: float):
    """Closed-form throttle f(s) for df/ds = clamp((u - f)/tau, -slew, slew).

    Returns a function of elapsed time s >= 0 (f(0) = f0). tau = 0 means a
    pure slew limit; slew = inf a pure lag.
    """
    e = u - f0
    if e == 0.0:
        return lambda s: u
    sgn = 1.0 if e > 0.0 else -1.0
    ae = abs(e)
    if tau <= 0.0:
        if not math.isfinite(slew):
            return lambda s: u
        t_done = ae / slew
        return lambda s: u if s >= t_done else f0 + sgn * slew * s
    if not math.isfinite(slew) or ae <= slew * tau:
        return lambda s: u - e * math.exp(-s / tau)
    t1 = (ae - slew * tau) / slew      # end of the slew-limited phase
    rem = sgn * slew * tau

    def f(s):
        if s <= t1:
            return f0 + sgn * slew * s
        return u - rem * math.exp(-(s - t1) / tau)
    return f


def _stage_throttles(fprof, dt: float, t0: float = 0.0):
    """(f(t0), f(t0 + dt/2), f(t0 + dt)) of a throttle profile function."""
    h = 0.5 * dt
    return fprof(t0), fprof(h + t0), fprof(dt + t0)


# Builds a PlantState from a complete 11-tuple without the NamedTuple's
# Python-level __new__ (the plant's hot path; ~0.15 us per state).
_new_state = tuple.__new__


class Plant:
    """Fixed-step 6-DOF plant. See the module docstring for the model."""

    #: the inertia is re-evaluated when the mass has moved by more than this fraction since the
    #: last evaluation (every ~30 steps of 20 ms at full thrust): refreshing it every step costs
    #: ~3x the step time and moves a terminal descent by 1 mm and 0.001 deg (docs/models.md,
    #: "Mass properties", has the measurement)
    INERTIA_REFRESH_REL = 1e-3

    @staticmethod
    def kernel_array_sizes() -> tuple:
        """Sizes of ``kernel_arrays()``: state vector, constants, control block, IMU inputs (mean
        specific force 3, mean rate 3, step length 1)."""
        return (len(STATE_FIELDS), len(PAR_FIELDS), len(CTL_FIELDS), 7)

    def __init__(self, lander: LanderSpec, terrain, state0: PlantState, *,
                 gm: float = MOON_GM, moon_rotation: bool = False,
                 moon_rotation_rate: float = MOON_ROTATION_RATE):
        self.lander = lander
        self._gm = float(gm)
        self.moon_rotation = bool(moon_rotation)
        self.terrain_fixed = terrain
        if self.moon_rotation:
            self.terrain = RotatingTerrain(terrain, moon_rotation_rate, state0.t_s)
        else:
            self.terrain = terrain
        L = lander
        self._thrust_max_n = float(L.thrust_max_n)
        self._ve = L.isp_s * G0
        self._ve_rcs = L.rcs_isp_s * G0
        a, b = L.thrust_misalignment_rad, L.thrust_misalignment_azimuth_rad
        self._dir_body = (math.sin(a) * math.cos(b), math.sin(a) * math.sin(b), math.cos(a))
        self._r_thrust = L.thrust_point_body_m
        # torque per newton of thrust: r x d
        self._tq_per_n = vcross(self._r_thrust, self._dir_body)
        self._tmax = L.rcs_torque_max_nm
        self._lever = L.rcs_lever_arm_m
        self._dry = L.dry_mass_kg
        # engine: command limits (fraction of thrust_max), lag (s), slew (1/s)
        tau_e, slew = L.engine_time_constant_s, L.throttle_slew_per_s
        self._eng = (L.throttle_min, L.throttle_max, tau_e, slew)
        q = quat_normalize(state0.q_mci_body)
        s0 = state0.replace(q_mci_body=q, mass_kg=L.dry_mass_kg + state0.propellant_kg + state0.rcs_propellant_kg)
        # The state lives in one float64 vector (STATE_FIELDS) that the compiled step kernel
        # advances in place; ``state`` is the PlantState view of it, built when asked for.
        self._x = np.zeros(len(STATE_FIELDS))
        self._state: PlantState | None = None
        self._xl: list | None = None
        # the height of a flat terrain (m): the step kernel then keeps the altitude in the state vector
        self._flat_height_m = terrain.height_m if type(terrain) is FlatTerrain and not self.moon_rotation else None
        self._radius_m = terrain.site.radius_m
        self._set_state(s0)
        self.touchdown_state: PlantState | None = None
        self._agl_ok = False
        self._agl = 0.0
        # the step kernel's control block (CTL_FIELDS): engine limits and lag, the cached lag decay
        # factors, flame-out, the inertia refresh point, the step clock, the no-contact radius
        ctl = np.zeros(len(CTL_FIELDS))
        ctl[_C_TMIN], ctl[_C_TMAX], ctl[_C_TAU], ctl[_C_SLEW] = self._eng
        # the throttle follows a pure lag while |u - f| <= this (see engine_throttle_profile)
        ctl[_C_LAG_EMAX] = -1.0 if tau_e <= 0.0 else (slew * tau_e if math.isfinite(slew) else math.inf)
        ctl[_C_DECAY_DT] = math.nan
        ctl[_C_TQ_X:_C_TQ_X + 3] = self._tmax
        # no point of the terrain lies farther from the Moon's centre than this (m): a step that
        # ends outside it cannot have touched down
        ctl[_C_R_SAFE] = terrain.site.radius_m + terrain.max_height_m
        ctl[_C_RADIUS] = self._radius_m
        ctl[_C_FLAT_H] = math.nan if self._flat_height_m is None else self._flat_height_m
        self._ctl = ctl
        # the RK4 kernel and its constants (PAR_FIELDS)
        self._kernel, compiled = load_rk4_kernel()
        self._substep = load_step_kernel()[0]
        par = [-self._gm, self._thrust_max_n, *self._dir_body, *self._tq_per_n, self._ve, self._ve_rcs,
               *self._lever, self._dry] + [0.0] * (len(PAR_FIELDS) - _PAR_INERTIA)
        self._par = np.array(par)
        self._set_inertia(s0.mass_kg)
        # the clock: t = t_origin + n dt for the n-th step of one step size dt (a running sum
        # t += dt would drift by rounding: 6e-8 s after 350,000 steps of 20 ms)
        ctl[_C_CLOCK_ORIGIN], ctl[_C_CLOCK_DT], ctl[_C_CLOCK_N] = s0.t_s, 0.0, 0.0
        # step-mean body specific force and rate (what an IMU integrates), and the step's length
        self._imu_in = np.array([*self._specific_force_now(s0), *s0.w_body, 0.0])
        if self.altitude_agl() <= 0.0:
            self.touchdown_state = self.state

    # ------------------------------------------------------------ props
    def state_vector(self) -> list:
        """The state as a list of floats in STATE_FIELDS order (t_s, r_mci, v_mci, q_mci_body,
        w_body, masses, thrust, throttle, torque): the cheap view for a per-cycle record."""
        v = self._xl
        if v is None:
            v = self._xl = self._x.tolist()
        return v

    @property
    def state(self) -> PlantState:
        s = self._state
        if s is None:
            x = self.state_vector()
            s = self._state = _new_state(PlantState, (x[0], (x[1], x[2], x[3]), (x[4], x[5], x[6]),
                                                      (x[7], x[8], x[9], x[10]), (x[11], x[12], x[13]),
                                                      x[14], x[15], x[16], x[17], x[18], (x[19], x[20], x[21])))
        return s

    def _set_state(self, s: PlantState) -> None:
        agl = math.nan if self._flat_height_m is None else self.altitude_agl(s)
        self._x[:] = (s.t_s, *s.r_mci, *s.v_mci, *s.q_mci_body, *s.w_body, s.mass_kg, s.propellant_kg,
                      s.rcs_propellant_kg, s.thrust_n, s.throttle, *s.torque_body, agl)
        self._state = s
        self._xl = None

    def kernel_arrays(self):
        """``(x, par, ctl, imu_in)``: the arrays ``step_kernel`` advances in place (STATE_FIELDS,
        PAR_FIELDS, CTL_FIELDS, and the last step's mean specific force (m/s^2, body), mean
        rate (rad/s, body) and length (s)). For a compiled cycle that composes the plant with
        other models (harness/cycle.py); call ``moved()`` after advancing them."""
        return self._x, self._par, self._ctl, self._imu_in

    def use_kernel_arrays(self, x, par, ctl, imu_in) -> None:
        """Keep the state, constants, control block and IMU inputs in these arrays from now on
        (same shapes; the current values are copied in): a compiled cycle lays several models
        out in one block."""
        for new, old in zip((x, par, ctl, imu_in), self.kernel_arrays()):
            if new.shape != old.shape:
                raise ValueError(f"plant kernel array of shape {new.shape}; expected {old.shape}")
            new[...] = old
        self._x, self._par, self._ctl, self._imu_in = x, par, ctl, imu_in

    def moved(self) -> None:
        """The state vector was advanced outside ``step`` (by the compiled cycle)."""
        self._state = None
        self._xl = None
        self._agl_ok = False

    @property
    def nonfinite_command_steps(self) -> int:
        """Steps flown under a NaN or infinite throttle or torque (each such value read as 0, then
        clamped to its range): a flight-code bug the verdict names."""
        return int(self._ctl[_C_NONFINITE])

    @property
    def flameout(self) -> bool:
        """The main engine has flamed out (propellant ran out); it stays out."""
        return bool(self._ctl[_C_FLAMEOUT])

    @flameout.setter
    def flameout(self, value: bool) -> None:
        self._ctl[_C_FLAMEOUT] = 1.0 if value else 0.0

    @property
    def gm(self) -> float:
        """Gravitational parameter (m^3/s^2), fixed at construction."""
        return self._gm

    @property
    def thrust_max_n(self) -> float:
        """Main-engine thrust at full throttle (N). Settable while flying (a thrust-loss fault
        sets it); the next step uses the new value."""
        return self._thrust_max_n

    @thrust_max_n.setter
    def thrust_max_n(self, value: float) -> None:
        self._thrust_max_n = float(value)
        self._par[PAR_FIELDS.index("thrust_max_n")] = self._thrust_max_n

    @property
    def touched_down(self) -> bool:
        return self.touchdown_state is not None

    def _set_inertia(self, m):
        """Inertia (kg m^2, body axes) at total mass m (kg) from the lander file, and what _rk4
        uses of it. Called when the mass has moved by more than 0.1 % (every ~30 steps)."""
        I = self.lander.inertia_at_mass(m)
        (a, b, c), (d, e, f), (g, h, i) = I
        self._I = I
        self._ctl[_C_INERTIA_MASS] = m
        self._ctl[_C_INERTIA_TOL] = self.INERTIA_REFRESH_REL * m   # re-evaluate when the mass moved by more (kg)
        self._diag = (b == 0.0 and c == 0.0 and d == 0.0 and f == 0.0 and g == 0.0 and h == 0.0)
        self._ctl[_C_DIAG] = 1.0 if self._diag else 0.0
        if self._diag:
            # principal-axis Euler coefficients: dw_x = (tau_x + (I_yy - I_zz) w_y w_z) / I_xx ...
            eul = (e - i, i - a, a - e, 1.0 / a, 1.0 / e, 1.0 / i)
            inv = ((0.0,) * 3,) * 3
        else:
            eul = (0.0,) * 6
            det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
            inv = (((e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det),
                   ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
                   ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det))
        self._par[_PAR_INERTIA:] = (*eul, *I[0], *I[1], *I[2], *inv[0], *inv[1], *inv[2])

    @property
    def inertia_body(self):
        return self._I

    def local_gravity(self, r_mci=None):
        """Gravitational acceleration (MCI, m/s^2) at r_mci (default: the lander)."""
        x, y, z = self.state.r_mci if r_mci is None else r_mci
        r2 = x * x + y * y + z * z
        k = -self._gm / (r2 * math.sqrt(r2))
        return (k * x, k * y, k * z)

    def altitude_agl(self, state: PlantState | None = None) -> float:
        """Height (m) of the centre of mass above the terrain directly below it."""
        if state is None:
            if self._agl_ok:
                return self._agl
            v = self.state_vector()
            h = v[_X_AGL]  # kept in the state vector over a flat terrain
            if h != h:
                t, x, y, z = v[0:4]
                if self.moon_rotation:
                    self.terrain.t_s = t
                h = math.sqrt(x * x + y * y + z * z) - self._radius_m - self.terrain.height_at((x, y, z))
            self._agl, self._agl_ok = h, True
            return h
        s = state
        if self.moon_rotation:
            self.terrain.t_s = s.t_s
        x, y, z = s.r_mci
        return (math.sqrt(x * x + y * y + z * z) - self.terrain.site.radius_m
                - self.terrain.height_at(s.r_mci))

    def altitude_sphere(self) -> float:
        """Height above the reference sphere (m)."""
        x, y, z = self.state.r_mci
        return math.sqrt(x * x + y * y + z * z) - self.terrain.site.radius_m

    def _specific_force_now(self, s: PlantState):
        T = s.thrust_n / s.mass_kg
        d = self._dir_body
        return (T * d[0], T * d[1], T * d[2])

    def specific_force_body(self):
        """Non-gravitational acceleration in body axes (m/s^2), averaged over
        the last step (Simpson weights of the RK4 stages): the IMU's input.
        Before the first step: the instantaneous value."""
        return tuple(self._imu_in[0:3].tolist())

    def specific_force_body_now(self):
        """Instantaneous non-gravitational acceleration at the current state."""
        return self._specific_force_now(self.state)

    def mean_w_body(self):
        """Body rate averaged over the last step (rad/s): the gyro's input."""
        return tuple(self._imu_in[3:6].tolist())

    @property
    def last_dt(self) -> float:
        """Length of the last step (s; shorter than asked at touchdown)."""
        return float(self._imu_in[6])

    def imu_inputs(self):
        """(specific_force_body(), mean_w_body(), last_dt) in one call: what an
        IMU integrates over the last step (m/s^2 and rad/s, body axes; s)."""
        a = self._imu_in.tolist()
        return (a[0], a[1], a[2]), (a[3], a[4], a[5]), a[6]

    # ------------------------------------------------------------- step
    def step(self, cmd: ActuatorCommand, dt: float) -> PlantState:
        """Advance by dt seconds under a command held constant over the step."""
        if self.touchdown_state is not None or dt <= 0.0:
            return self.state
        thr, engine_on, torque = cmd
        try:
            tx, ty, tz = torque
            while True:
                # the usual step, compiled (``step_kernel``); it says what it needs otherwise
                need = self._substep(self._x, self._par, self._ctl, self._imu_in, float(thr), bool(engine_on),
                                     float(tx), float(ty), float(tz), float(dt))
                if need == STEP_DONE:
                    self.moved()
                    return self.state
                if not self.prepare_step(need, dt):
                    break
        except (TypeError, ValueError):  # a command of other types than floats: the general step takes it
            pass
        return self._step_general(cmd, dt)

    def prepare_step(self, need: int, dt: float) -> bool:
        """Do what ``step_kernel`` asked for before it can take a step of dt (s): refresh the
        inertia, the lag decay factors or the clock (True: try it again), or say that the step
        needs the general path (False: a throttle profile other than a pure lag, propellant
        running out inside the step, a possible touchdown)."""
        ctl = self._ctl
        if need == STEP_NEEDS_INERTIA:
            self._set_inertia(float(self._x[_X_MASS]))
        elif need == STEP_NEEDS_DECAY:
            tau_e = self._eng[2]
            ctl[_C_DECAY_DT], ctl[_C_DECAY_H], ctl[_C_DECAY_FULL] = (
                dt, math.exp(-(0.5 * dt) / tau_e), math.exp(-dt / tau_e))
        elif need == STEP_NEEDS_CLOCK:
            ctl[_C_CLOCK_ORIGIN], ctl[_C_CLOCK_DT], ctl[_C_CLOCK_N] = float(self._x[0]), dt, 0.0
        else:
            return False
        return True

    def _step_general(self, cmd: ActuatorCommand, dt: float) -> PlantState:
        """The step for every case (``step_kernel`` takes the usual one with the same arithmetic):
        any throttle profile, depletion inside the step, touchdown inside the step."""
        s0 = self.state
        ctl = self._ctl
        thr, engine_on, (tx, ty, tz) = cmd
        # as doubles, as the compiled step reads them: a numpy scalar from a fault hook (float32
        # above all) would otherwise make the arithmetic below its own type's (numpy 2's rules)
        thr, tx, ty, tz = float(thr), float(tx), float(ty), float(tz)
        tmin, tmax, tau_e, slew = self._eng
        nonfinite = False  # a NaN or infinite throttle or torque read as 0 (counted once the step is taken)
        # engine target u; the range tests also catch NaN and inf (read as 0)
        if engine_on and s0.propellant_kg > 0.0 and not self.flameout:
            if not (tmin <= thr <= tmax):
                if not (-1e300 < thr < 1e300):
                    thr = _finite(thr)
                    nonfinite = True
                thr = tmin if thr < tmin else (tmax if thr > tmax else thr)
            u = thr
        else:
            u = 0.0
        # RCS torque (N m), clamped per axis
        if s0.rcs_propellant_kg > 0.0:
            mx, my, mz = self._tmax
            if -mx <= tx <= mx and -my <= ty <= my and -mz <= tz <= mz:
                tau = (tx, ty, tz)
            else:
                if not (-1e300 < tx < 1e300 and -1e300 < ty < 1e300 and -1e300 < tz < 1e300):
                    tx, ty, tz = _finite(tx), _finite(ty), _finite(tz)
                    nonfinite = True
                tau = (mx if tx > mx else (-mx if tx < -mx else tx),
                       my if ty > my else (-my if ty < -my else ty),
                       mz if tz > mz else (-mz if tz < -mz else tz))
        else:
            tau = (0.0, 0.0, 0.0)
        if abs(s0.mass_kg - ctl[_C_INERTIA_MASS]) > ctl[_C_INERTIA_TOL]:
            self._set_inertia(s0.mass_kg)
        if dt != ctl[_C_CLOCK_DT]:
            ctl[_C_CLOCK_ORIGIN], ctl[_C_CLOCK_DT], ctl[_C_CLOCK_N] = s0.t_s, dt, 0.0
        ctl[_C_CLOCK_N] += 1.0
        f0 = s0.throttle
        e = u - f0
        if e == 0.0:
            fa = fm = fb = u
        elif -ctl[_C_LAG_EMAX] <= e <= ctl[_C_LAG_EMAX]:
            # pure lag (the usual case): engine_throttle_profile's formula with cached exps
            if dt != ctl[_C_DECAY_DT]:
                self.prepare_step(STEP_NEEDS_DECAY, dt)
            xh, xdt = float(ctl[_C_DECAY_H]), float(ctl[_C_DECAY_FULL])
            fa, fm, fb = u - e, u - e * xh, u - e * xdt
        else:
            fa, fm, fb = _stage_throttles(engine_throttle_profile(f0, u, tau_e, slew), dt)
        s1, fmean, wmean = self._rk4(s0, dt, fa, fm, fb, tau)
        # propellant depletion or touchdown inside the step (rare): these paths
        # evaluate the throttle profile at other times, so they take the function
        fprof = None
        if s1.propellant_kg < 0.0 or s1.rcs_propellant_kg < 0.0:
            fprof = engine_throttle_profile(f0, u, tau_e, slew)
            s1, fmean, wmean = self._split_depletion(s0, dt, fprof, tau, s1)
        h1 = self.altitude_agl(s1)
        if h1 <= 0.0:
            # touchdown inside the step: re-integrate to the contact instant
            if fprof is None:
                fprof = engine_throttle_profile(f0, u, tau_e, slew)
            s1, fmean, wmean = self._to_contact(s0, dt, fprof, tau, h1, s1)
            self.touchdown_state = s1
            h1 = self.altitude_agl(s1)
        else:
            t1 = float(ctl[_C_CLOCK_ORIGIN] + ctl[_C_CLOCK_N] * dt)
            if s1.t_s != t1:
                s1 = s1._replace(t_s=t1)
        self._set_state(s1)
        self._agl, self._agl_ok = h1, True
        self._imu_in[:] = (*fmean, *wmean, s1.t_s - s0.t_s)
        if nonfinite:
            ctl[_C_NONFINITE] += 1.0
        return s1

    def _split_depletion(self, s0, dt, fprof, tau, s1):
        used_p = s0.propellant_kg - s1.propellant_kg
        used_r = s0.rcs_propellant_kg - s1.rcs_propellant_kg
        frac = 1.0
        if s1.propellant_kg < 0.0 and used_p > 0.0:
            frac = min(frac, s0.propellant_kg / used_p)
        if s1.rcs_propellant_kg < 0.0 and used_r > 0.0:
            frac = min(frac, s0.rcs_propellant_kg / used_r)
        dt1 = dt * frac
        sa, fa, wa = self._rk4(s0, dt1, *_stage_throttles(fprof, dt1), tau)
        p = max(0.0, sa.propellant_kg)
        r = max(0.0, sa.rcs_propellant_kg)
        if p <= 1e-9 * max(1.0, s0.propellant_kg):
            p = 0.0
        if r <= 1e-9 * max(1.0, s0.rcs_propellant_kg):
            r = 0.0
        thr = sa.throttle
        if p == 0.0:
            self.flameout = True
            thr = 0.0
        sa = sa.replace(propellant_kg=p, rcs_propellant_kg=r, throttle=thr,
                        thrust_n=thr * self.thrust_max_n,
                        mass_kg=self._dry + p + r)
        dt2 = dt - dt1
        if dt2 <= 0.0:
            return sa, fa, wa
        # the engine keeps its profile from where it is, or is out
        f2 = _stage_throttles(fprof, dt2, dt1) if p > 0.0 else (0.0, 0.0, 0.0)
        tau2 = tau if r > 0.0 else (0.0, 0.0, 0.0)
        sb, fb, wb = self._rk4(sa, dt2, *f2, tau2)
        sb = sb.replace(propellant_kg=max(0.0, sb.propellant_kg),
                        rcs_propellant_kg=max(0.0, sb.rcs_propellant_kg))
        w1, w2 = dt1 / dt, dt2 / dt
        fm = tuple(w1 * a + w2 * b for a, b in zip(fa, fb))
        wm = tuple(w1 * a + w2 * b for a, b in zip(wa, wb))
        return sb, fm, wm

    def _to_contact(self, s0, dt, fprof, tau, h1, s1):
        h0 = self.altitude_agl(s0)
        # secant on the step length, starting from the linear estimate
        ta, ha = 0.0, h0
        tb, hb = dt, h1
        fm, wm, _dt = self.imu_inputs()
        best = (s1, fm, wm)
        sc = s1
        for _ in range(30):
            tc = ta + (tb - ta) * ha / (ha - hb) if ha != hb else 0.5 * (ta + tb)
            if not (ta < tc < tb):
                tc = 0.5 * (ta + tb)
            sc, fm, wm = self._rk4(s0, tc, *_stage_throttles(fprof, tc), tau)
            hc = self.altitude_agl(sc)
            best = (sc, fm, wm)
            if abs(hc) < 1e-3 or (tb - ta) < 1e-9:
                break
            if hc > 0.0:
                ta, ha = tc, hc
            else:
                tb, hb = tc, hc
        return best

    def _rk4(self, s0: PlantState, dt: float, fa: float, fm: float, fb: float, tau):
        """One RK4 step from s0 (``rk4_kernel``, compiled when numba is there).

        fa, fm, fb: engine throttle at the stage times 0, dt/2, dt (fraction of
        thrust_max); tau: RCS torque (N m, body axes), constant over the step.
        Returns (state, step-mean specific force in body axes, step-mean w_body).
        """
        (t0, (rx, ry, rz), (vx, vy, vz), (qw, qx, qy, qz), (wx, wy, wz),
         _, p0, r0, _, _, _) = s0
        tx, ty, tz = tau
        head, fmean, wmean = self._kernel(t0, rx, ry, rz, vx, vy, vz, qw, qx, qy, qz, wx, wy, wz, p0, r0,
                                          dt, fa, fm, fb, tx, ty, tz, self._par, self._diag)
        return _new_state(PlantState, head + (tau,)), fmean, wmean


# ---------------------------------------------------------- RK4 kernel
def rk4_rates(rx, ry, rz, qw, qx, qy, qz, wx, wy, wz, fbx, fby, fbz, mx, my, mz, par, diag):
    """The attitude and translational rates at one RK4 stage (scalar floats only).

    r (m, MCI), q (body -> MCI, scalar first), w (rad/s, body): the stage's state.
    fb: specific force of the engine (m/s^2, body axes); m: torque (N m, body axes).
    par, diag: as ``rk4_kernel``.

    Returns (dv/dt (m/s^2, MCI), q (x) (0, w) with its scalar part negated (= 2 dq/dt with
    that sign; ``rk4_kernel`` applies the 1/2 and the sign with its step sizes), dw/dt
    (rad/s^2, body)). Compiled into the kernel with it (``load_rk4_kernel``).
    """
    r2 = rx * rx + ry * ry + rz * rz
    k = par[0] / (r2 * math.sqrt(r2))
    # R(q) fb by the two-cross-product formula, plus gravity
    t1 = 2.0 * (qy * fbz - qz * fby); t2 = 2.0 * (qz * fbx - qx * fbz); t3 = 2.0 * (qx * fby - qy * fbx)
    ax = fbx + qw * t1 + (qy * t3 - qz * t2) + k * rx
    ay = fby + qw * t2 + (qz * t1 - qx * t3) + k * ry
    az = fbz + qw * t3 + (qx * t2 - qy * t1) + k * rz
    qdw = qx * wx + qy * wy + qz * wz
    qdx = qw * wx + qy * wz - qz * wy
    qdy = qw * wy - qx * wz + qz * wx
    qdz = qw * wz + qx * wy - qy * wx
    if diag:
        # principal axes: dw_x = (m_x + (I_yy - I_zz) w_y w_z) / I_xx ...
        ex, ey, ez, ix, iy, iz = par[14], par[15], par[16], par[17], par[18], par[19]
        wdx = (mx + ex * wy * wz) * ix; wdy = (my + ey * wz * wx) * iy; wdz = (mz + ez * wx * wy) * iz
    else:
        # dw/dt = I^-1 (m - w x I w)
        I00, I01, I02, I10, I11, I12, I20, I21, I22 = (par[20], par[21], par[22], par[23], par[24],
                                                       par[25], par[26], par[27], par[28])
        J00, J01, J02, J10, J11, J12, J20, J21, J22 = (par[29], par[30], par[31], par[32], par[33],
                                                       par[34], par[35], par[36], par[37])
        hx = I00 * wx + I01 * wy + I02 * wz; hy = I10 * wx + I11 * wy + I12 * wz; hz = I20 * wx + I21 * wy + I22 * wz
        mx = mx - (wy * hz - wz * hy); my = my - (wz * hx - wx * hz); mz = mz - (wx * hy - wy * hx)
        wdx = J00 * mx + J01 * my + J02 * mz; wdy = J10 * mx + J11 * my + J12 * mz; wdz = J20 * mx + J21 * my + J22 * mz
    return ax, ay, az, qdw, qdx, qdy, qdz, wdx, wdy, wdz


def rk4_kernel(t0, rx, ry, rz, vx, vy, vz, qw, qx, qy, qz, wx, wy, wz, p0, r0,
               dt, fa, fm, fb, tx, ty, tz, par, diag):
    """One classical RK4 step of the plant (scalar floats only).

    State at t0: r (m, MCI), v (m/s, MCI), q (body -> MCI, scalar first), w (rad/s, body),
    p0, r0: main and RCS propellant (kg). dt: step (s). fa, fm, fb: engine throttle at the
    stage times 0, dt/2, dt (fraction of thrust_max). tx, ty, tz: RCS torque (N m, body axes),
    constant over the step. par: the lander's constants, laid out as ``PAR_FIELDS``.
    diag: the inertia tensor is diagonal (principal body axes; par's Euler block is used,
    else its I and I^-1 blocks).

    Returns ((t, r, v, q, w, mass, propellant, rcs_propellant, thrust, throttle) at t0 + dt,
    step-mean specific force in body axes (m/s^2), step-mean w_body (rad/s)). The masses
    are integrated in closed form from the known thrust history (Simpson's rule on T(t);
    exact for constant thrust); translational, attitude and rate states by RK4 with the
    stage masses and thrusts (rates: ``rk4_rates``).

    Plain Python that numba compiles as it stands (``load_rk4_kernel``): no objects, no
    allocation, only float arithmetic and ``math.sqrt``, so the compiled and the
    interpreted kernel give the same bits (tests/test_plant_jit.py).
    """
    Tmax, dx, dy, dz = par[1], par[2], par[3], par[4]
    cx, cy, cz, ve, ve_rcs = par[5], par[6], par[7], par[8], par[9]
    lv0, lv1, lv2, dry = par[10], par[11], par[12], par[13]
    h = 0.5 * dt
    # the quaternion rates q1..q4 hold 2 dq/dt with the scalar part negated; the 1/2 and
    # that sign are applied with the step sizes hq, dtq, cq (bit-identical: scaling by 1/2
    # is exact)
    hq, dtq = 0.5 * h, 0.5 * dt

    # thrust at the stage times (0, dt/2, dt); no thrust without propellant
    if p0 <= 0.0:
        fa = fm = fb = 0.0
    Ta, Tm, Tb = fa * Tmax, fm * Tmax, fb * Tmax
    # masses: main by Simpson / trapezoid on T(t); RCS linear
    rdot = (abs(tx) / lv0 + abs(ty) / lv1 + abs(tz) / lv2) / ve_rcs if r0 > 0.0 else 0.0
    p_m = p0 - h * 0.5 * (Ta + Tm) / ve
    p1 = p0 - dt * (Ta + 4.0 * Tm + Tb) / (6.0 * ve)
    r_m = r0 - h * rdot
    r1 = r0 - dt * rdot
    ia = Ta / (dry + p0 + r0)            # specific force magnitudes
    im = Tm / (dry + p_m + r_m)
    ib = Tb / (dry + p1 + r1)
    # torque (RCS + thrust misalignment) at the stage times
    mxa, mya, mza = tx + cx * Ta, ty + cy * Ta, tz + cz * Ta
    mxm, mym, mzm = tx + cx * Tm, ty + cy * Tm, tz + cz * Tm
    mxb, myb, mzb = tx + cx * Tb, ty + cy * Tb, tz + cz * Tb

    # ---- stage 1 (t, state)
    (a1x, a1y, a1z, q1w, q1x, q1y, q1z, w1x, w1y, w1z) = rk4_rates(
        rx, ry, rz, qw, qx, qy, qz, wx, wy, wz, ia * dx, ia * dy, ia * dz, mxa, mya, mza, par, diag)

    # ---- stage 2 (t + h, state + h k1)
    v2x = vx + h * a1x; v2y = vy + h * a1y; v2z = vz + h * a1z
    W2x = wx + h * w1x; W2y = wy + h * w1y; W2z = wz + h * w1z
    (a2x, a2y, a2z, q2w, q2x, q2y, q2z, w2x, w2y, w2z) = rk4_rates(
        rx + h * vx, ry + h * vy, rz + h * vz, qw - hq * q1w, qx + hq * q1x, qy + hq * q1y, qz + hq * q1z,
        W2x, W2y, W2z, im * dx, im * dy, im * dz, mxm, mym, mzm, par, diag)

    # ---- stage 3 (t + h, state + h k2)
    v3x = vx + h * a2x; v3y = vy + h * a2y; v3z = vz + h * a2z
    W3x = wx + h * w2x; W3y = wy + h * w2y; W3z = wz + h * w2z
    (a3x, a3y, a3z, q3w, q3x, q3y, q3z, w3x, w3y, w3z) = rk4_rates(
        rx + h * v2x, ry + h * v2y, rz + h * v2z, qw - hq * q2w, qx + hq * q2x, qy + hq * q2y, qz + hq * q2z,
        W3x, W3y, W3z, im * dx, im * dy, im * dz, mxm, mym, mzm, par, diag)

    # ---- stage 4 (t + dt, state + dt k3)
    v4x = vx + dt * a3x; v4y = vy + dt * a3y; v4z = vz + dt * a3z
    W4x = wx + dt * w3x; W4y = wy + dt * w3y; W4z = wz + dt * w3z
    (a4x, a4y, a4z, q4w, q4x, q4y, q4z, w4x, w4y, w4z) = rk4_rates(
        rx + dt * v3x, ry + dt * v3y, rz + dt * v3z, qw - dtq * q3w, qx + dtq * q3x, qy + dtq * q3y,
        qz + dtq * q3z, W4x, W4y, W4z, ib * dx, ib * dy, ib * dz, mxb, myb, mzb, par, diag)

    c = dt / 6.0
    nrx = rx + c * (vx + 2.0 * (v2x + v3x) + v4x)
    nry = ry + c * (vy + 2.0 * (v2y + v3y) + v4y)
    nrz = rz + c * (vz + 2.0 * (v2z + v3z) + v4z)
    nvx = vx + c * (a1x + 2.0 * (a2x + a3x) + a4x)
    nvy = vy + c * (a1y + 2.0 * (a2y + a3y) + a4y)
    nvz = vz + c * (a1z + 2.0 * (a2z + a3z) + a4z)
    cq = 0.5 * c
    nqw = qw - cq * (q1w + 2.0 * (q2w + q3w) + q4w)
    nqx = qx + cq * (q1x + 2.0 * (q2x + q3x) + q4x)
    nqy = qy + cq * (q1y + 2.0 * (q2y + q3y) + q4y)
    nqz = qz + cq * (q1z + 2.0 * (q2z + q3z) + q4z)
    nwx = wx + c * (w1x + 2.0 * (w2x + w3x) + w4x)
    nwy = wy + c * (w1y + 2.0 * (w2y + w3y) + w4y)
    nwz = wz + c * (w1z + 2.0 * (w2z + w3z) + w4z)
    qn = 1.0 / math.sqrt(nqw * nqw + nqx * nqx + nqy * nqy + nqz * nqz)
    im6 = (ia + 4.0 * im + ib) / 6.0
    fmean = (im6 * dx, im6 * dy, im6 * dz)
    wmean = ((wx + 2.0 * (W2x + W3x) + nwx) / 6.0,
             (wy + 2.0 * (W2y + W3y) + nwy) / 6.0,
             (wz + 2.0 * (W2z + W3z) + nwz) / 6.0)
    return ((t0 + dt, (nrx, nry, nrz), (nvx, nvy, nvz), (nqw * qn, nqx * qn, nqy * qn, nqz * qn),
             (nwx, nwy, nwz), dry + p1 + r1, p1, r1, Tb, fb), fmean, wmean)


#: rk4_kernel's ``par``: the lander's constants in one float64 vector (the compiled kernel takes one
#: array much faster than many tuples); thrust direction and torque per newton in body axes
PAR_FIELDS = ("-GM", "thrust_max_n", "dir_x", "dir_y", "dir_z", "torque_per_n_x", "torque_per_n_y",
              "torque_per_n_z", "ve_mps", "ve_rcs_mps", "rcs_lever_x_m", "rcs_lever_y_m", "rcs_lever_z_m",
              "dry_mass_kg",
              "euler_x", "euler_y", "euler_z", "inv_Ixx", "inv_Iyy", "inv_Izz",  # diagonal inertia
              *(f"I{i}{j}" for i in range(3) for j in range(3)),                 # full inertia
              *(f"Iinv{i}{j}" for i in range(3) for j in range(3)))
_PAR_INERTIA = PAR_FIELDS.index("euler_x")

_RK4 = None


def load_rk4_kernel():
    """``(kernel, compiled)``: rk4_kernel compiled by numba (once per process; the machine code is
    cached next to this file, so only the first process after a change pays the ~3 s compile),
    or the plain-Python kernel when numba is not installed or ``NUMBA_DISABLE_JIT=1``."""
    global _RK4
    if _RK4 is None:  # (rk4_rates compiled into it; no fastmath: IEEE arithmetic in the written order)
        _RK4 = compile_kernel(rk4_kernel, lambda nb: (nb.float64,) * 23 + (nb.float64[::1], nb.boolean),
                              (rk4_rates,))
    return _RK4


# ---------------------------------------------------------- step kernel
#: The plant state as one float64 vector (``Plant.kernel_arrays()[0]``): the fields of PlantState in
#: order, then the height above a flat terrain (m; NaN on any other terrain: ``Plant.altitude_agl``).
STATE_FIELDS = ("t_s", "r_x", "r_y", "r_z", "v_x", "v_y", "v_z", "q_w", "q_x", "q_y", "q_z", "w_x", "w_y", "w_z",
                "mass_kg", "propellant_kg", "rcs_propellant_kg", "thrust_n", "throttle",
                "torque_x", "torque_y", "torque_z", "altitude_agl_m")
_X_MASS = STATE_FIELDS.index("mass_kg")
_X_AGL = STATE_FIELDS.index("altitude_agl_m")

#: The step kernel's control block: engine limits (throttle fractions), lag time constant (s) and
#: slew (1/s), the largest |u - f| of a pure lag, the lag decay factors cached for one dt, flame-out
#: (0/1), the mass the inertia was last evaluated at and the tolerance (kg), inertia diagonal (0/1),
#: the step clock (origin s, step s, count), the no-contact radius (m), the RCS torque limits (N m),
#: the site's reference radius (m) and the flat terrain's height (m; NaN: not flat).
CTL_FIELDS = ("throttle_min", "throttle_max", "tau_e_s", "slew_per_s", "lag_emax", "decay_dt_s",
              "decay_half", "decay_full", "flameout", "inertia_mass_kg", "inertia_tol_kg", "inertia_diag",
              "clock_origin_s", "clock_dt_s", "clock_n", "r_safe_m", "torque_max_x", "torque_max_y",
              "torque_max_z", "radius_m", "flat_height_m", "nonfinite_steps")
(_C_TMIN, _C_TMAX, _C_TAU, _C_SLEW, _C_LAG_EMAX, _C_DECAY_DT, _C_DECAY_H, _C_DECAY_FULL, _C_FLAMEOUT,
 _C_INERTIA_MASS, _C_INERTIA_TOL, _C_DIAG, _C_CLOCK_ORIGIN, _C_CLOCK_DT, _C_CLOCK_N, _C_R_SAFE,
 _C_TQ_X, _C_TQ_Y, _C_TQ_Z, _C_RADIUS, _C_FLAT_H, _C_NONFINITE) = range(len(CTL_FIELDS))

#: What ``step_kernel`` returns: the step was taken, or what it needs first (no state changed then).
STEP_DONE, STEP_NEEDS_INERTIA, STEP_NEEDS_DECAY, STEP_NEEDS_CLOCK, STEP_NEEDS_GENERAL = range(5)


def step_kernel(x, par, ctl, imu_in, thr, engine_on, tx, ty, tz, dt):
    """The usual plant step of dt (s), in place on the state vector x (STATE_FIELDS).

    The same arithmetic, in the same order, as ``Plant._step_general`` for the case it covers:
    the engine target and torque clamps, a throttle that is steady or follows a pure lag, no
    propellant running out, and a step that ends outside the no-contact radius (no touchdown
    possible). Anything else, or a cached value that is stale (inertia, lag decay factors,
    clock), returns a STEP_NEEDS_* code before anything is changed; the caller does it
    (``Plant.prepare_step``) and tries again, or takes the general step. thr, engine_on, tx,
    ty, tz: the command (fraction of thrust_max, main valve, RCS torque N m body axes).
    imu_in receives the step's mean specific force (m/s^2, body), mean rate (rad/s, body) and
    length (s). Plain Python on floats that numba compiles (``load_step_kernel``).
    """
    p0 = x[15]
    r0 = x[16]
    nonfinite = False  # a NaN or infinite throttle or torque read as 0 (counted once the step is taken)
    # engine target u; the range tests also catch NaN and inf (read as 0)
    if engine_on and p0 > 0.0 and ctl[8] == 0.0:
        tmin = ctl[0]
        tmax = ctl[1]
        if not (tmin <= thr <= tmax):
            if not (-1e300 < thr < 1e300):
                thr = 0.0
                nonfinite = True
            thr = tmin if thr < tmin else (tmax if thr > tmax else thr)
        u = thr
    else:
        u = 0.0
    # RCS torque (N m), clamped per axis
    if r0 > 0.0:
        mx = ctl[16]
        my = ctl[17]
        mz = ctl[18]
        if not (-mx <= tx <= mx and -my <= ty <= my and -mz <= tz <= mz):
            if not (-1e300 < tx < 1e300):
                tx = 0.0
                nonfinite = True
            if not (-1e300 < ty < 1e300):
                ty = 0.0
                nonfinite = True
            if not (-1e300 < tz < 1e300):
                tz = 0.0
                nonfinite = True
            tx = mx if tx > mx else (-mx if tx < -mx else tx)
            ty = my if ty > my else (-my if ty < -my else ty)
            tz = mz if tz > mz else (-mz if tz < -mz else tz)
    else:
        tx = ty = tz = 0.0
    if abs(x[14] - ctl[9]) > ctl[10]:
        return 1  # STEP_NEEDS_INERTIA
    if dt != ctl[13]:
        return 3  # STEP_NEEDS_CLOCK
    f0 = x[18]
    e = u - f0
    if e == 0.0:
        fa = fm = fb = u
    elif -ctl[4] <= e <= ctl[4]:
        if dt != ctl[5]:
            return 2  # STEP_NEEDS_DECAY
        fa = u - e
        fm = u - e * ctl[6]
        fb = u - e * ctl[7]
    else:
        return 4  # STEP_NEEDS_GENERAL: slew-limited throttle profile
    head, fmean, wmean = rk4_kernel(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10],
                                    x[11], x[12], x[13], p0, r0, dt, fa, fm, fb, tx, ty, tz, par, ctl[11] != 0.0)
    t1, (rx, ry, rz), (vx, vy, vz), (qw, qx, qy, qz), (wx, wy, wz), mass, p1, r1, thrust, throttle = head
    if p1 < 0.0 or r1 < 0.0:
        return 4  # STEP_NEEDS_GENERAL: propellant runs out inside the step
    rn = math.sqrt(rx * rx + ry * ry + rz * rz)
    if rn <= ctl[15]:
        return 4  # STEP_NEEDS_GENERAL: the terrain may be reached in this step
    n = ctl[14] + 1.0
    ctl[14] = n
    t0 = x[0]
    x[0] = ctl[12] + n * dt
    x[1] = rx; x[2] = ry; x[3] = rz
    x[4] = vx; x[5] = vy; x[6] = vz
    x[7] = qw; x[8] = qx; x[9] = qy; x[10] = qz
    x[11] = wx; x[12] = wy; x[13] = wz
    x[14] = mass; x[15] = p1; x[16] = r1; x[17] = thrust; x[18] = throttle
    x[19] = tx; x[20] = ty; x[21] = tz
    x[22] = rn - ctl[19] - ctl[20]  # NaN unless the terrain is flat
    imu_in[0] = fmean[0]; imu_in[1] = fmean[1]; imu_in[2] = fmean[2]
    imu_in[3] = wmean[0]; imu_in[4] = wmean[1]; imu_in[5] = wmean[2]
    imu_in[6] = x[0] - t0
    if nonfinite:
        ctl[21] += 1.0  # nonfinite_steps
    return 0  # STEP_DONE


_STEP = None


def load_step_kernel():
    """``(kernel, compiled)``: step_kernel compiled by numba with rk4_kernel inlined (once per
    process, cached on disk like ``load_rk4_kernel``), or the plain-Python one."""
    global _STEP
    if _STEP is None:
        def sig(nb):
            f8, a8 = nb.float64, nb.float64[::1]
            return nb.int64(a8, a8, a8, a8, f8, nb.boolean, f8, f8, f8, f8)
        _STEP = compile_kernel(step_kernel, sig, (rk4_kernel,)) if load_rk4_kernel()[1] else (step_kernel, False)
    return _STEP


# ---------------------------------------------------------- initial state
def initial_state(site: SiteFrame, lander: LanderSpec, altitude_m: float,
                  downrange_m: float = 0.0, crossrange_m: float = 0.0,
                  v_east: float = 0.0, v_north: float = 0.0, v_up: float = 0.0, *,
                  tilt_rad: float = 0.0, tilt_azimuth_rad: float = 0.0,
                  q_mci_body=None, w_body=(0.0, 0.0, 0.0),
                  propellant_kg: float | str | None = None,
                  rcs_propellant_kg: float | None = None,
                  throttle: float = 0.0, t_s: float = 0.0,
                  moon_rotation: bool = False,
                  moon_rotation_rate: float = MOON_ROTATION_RATE) -> PlantState:
    """Initial plant state for a scenario.

    Position: ``downrange_m`` east and ``crossrange_m`` north of the site
    (negative downrange = uprange, west), measured as tangent-plane
    coordinates of the radial projection, at ``altitude_m`` above the
    reference sphere (not above the terrain). Velocity components
    (v_east, v_north, v_up) are along the *local* east/north/up at that
    point (so a purely horizontal velocity is horizontal there), relative to
    the surface: with ``moon_rotation`` the surface velocity w x r is added.
    Attitude: ``q_mci_body`` if given, else upright at the lander's position
    tilted by ``tilt_rad`` toward ``tilt_azimuth_rad`` (from north, positive
    toward east; braking while flying east: tilt toward -pi/2 = west).
    ``propellant_kg``: kg, or the name of a load in the lander file
    (e.g. "terminal_descent"); default: full load. ``throttle``: initial
    engine state (0 = off).
    """
    if propellant_kg is None:
        propellant_kg = lander.propellant_mass_kg
    elif isinstance(propellant_kg, str):
        propellant_kg = lander.propellant_load(propellant_kg)
    if rcs_propellant_kg is None:
        rcs_propellant_kg = lander.rcs_propellant_mass_kg
    r_mci = site.surface_point_mci(downrange_m, crossrange_m, altitude_m)
    # the local frame at the lander's own position
    x, y, z = r_mci
    lat = math.atan2(z, math.hypot(x, y))
    lon = math.atan2(y, x)
    local = SiteFrame(lat, lon, site.radius_m)
    v_mci = local.vel_to_mci(v_east, v_north, v_up)
    if moon_rotation:
        w = moon_rotation_rate
        v_mci = (v_mci[0] - w * y, v_mci[1] + w * x, v_mci[2])
    if q_mci_body is None:
        q_mci_body = local.q_tilted(tilt_rad, tilt_azimuth_rad)
    mass = lander.dry_mass_kg + propellant_kg + rcs_propellant_kg
    return PlantState(t_s, r_mci, v_mci, quat_normalize(tuple(q_mci_body)),
                      tuple(float(c) for c in w_body), mass, float(propellant_kg),
                      float(rcs_propellant_kg), throttle * lander.thrust_max_n, throttle)
