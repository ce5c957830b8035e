"""Strapdown IMU model: delta-v and delta-angle increments in body axes.

IMU axes = body axes. Per plant step the caller passes the step's mean
specific force (m/s^2, ``plant.specific_force_body()``) and body rate
(rad/s, ``plant.mean_w_body()``) and the step length; ``read()`` returns and
resets the increments integrated since the last read.

Measurement model, per axis i and per accumulate call of length dt::

    f_m = sat( (1 + sf_a_i) * (f_i + lever-arm term) + b_a_i , a_sat )
    w_m = sat( (1 + sf_g_i) * w_i + b_g_i , g_sat )
    dv     += f_m * dt + N_a * sqrt(dt) * n1      (velocity random walk)
    dtheta += w_m * dt + N_g * sqrt(dt) * n2      (angle random walk)

with n ~ N(0, 1). N_a (m/s^2/sqrt(Hz) = m/s/sqrt(s)) and N_g (rad/s/sqrt(Hz)
= rad/sqrt(s)) are noise densities: the increment over an interval T has
standard deviation N*sqrt(T) whatever the step. Biases b = configured fixed
bias + a turn-on bias drawn once from the generator (``*_bias_sigma``).
Saturation clamps the sensed value at the sensor's range. The lever-arm term
w x (w x r_imu) is the centripetal acceleration at the IMU position (the
angular-acceleration term is neglected). Optional output quantisation
(``dv_lsb_mps``, ``dtheta_lsb_rad``) carries the residual to the next read.

``rate_hz`` is the IMU's sample rate: a read covering less than one IMU
sample period is flagged invalid.

Accumulators: like a real IMU's delta-v / delta-angle counters, the model keeps running f64 sums
of every increment it reports (after quantisation and the fault hooks below), since it started.
``read()`` returns them with each reading; a consumer that loses readings recovers their sum by
differencing the accumulators of the readings it did get. A scenario fault that alters a reading
after ``read()`` (harness/faults.py) hands the altered reading to ``report()``, so the counters
follow what was actually reported.

Fault hooks for scenarios: ``accel_zero`` (accelerometers read exactly 0:
Luna-25), ``gyro_zero``, ``failed`` (outputs flagged invalid: Beresheet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace as _dc_replace
from typing import NamedTuple

import numpy as np

from harness.errors import ConfigError
from harness.jit import compile_kernel
from sensor_models._config import config_from_dict

_BLOCK = 256
_DEG = math.pi / 180.0
_UG = 9.80665e-6


class ImuReading(NamedTuple):
    dv_body: tuple        # m/s, integrated specific force over the interval
    dtheta_body: tuple    # rad, integrated angular rate over the interval
    dt_s: float           # length of the interval, s
    valid: bool
    dv_accum_body: tuple = (0.0, 0.0, 0.0)      # m/s, sum of every dv_body reported since start
    dtheta_accum_body: tuple = (0.0, 0.0, 0.0)  # rad, sum of every dtheta_body reported since start


# Builds an ImuReading from a complete 6-tuple without the NamedTuple's
# Python-level __new__ (read() runs every flight cycle).
_new_reading = tuple.__new__


@dataclass(frozen=True)
class ImuConfig:
    rate_hz: float = 400.0
    accel_bias_mps2: tuple = (0.0, 0.0, 0.0)
    accel_bias_sigma_mps2: float = 0.0
    gyro_bias_rad_s: tuple = (0.0, 0.0, 0.0)
    gyro_bias_sigma_rad_s: float = 0.0
    accel_noise_density: float = 0.0     # m/s^2/sqrt(Hz)
    gyro_noise_density: float = 0.0      # rad/s/sqrt(Hz)
    accel_scale_factor: tuple = (0.0, 0.0, 0.0)  # fractional error (100 ppm = 1e-4)
    gyro_scale_factor: tuple = (0.0, 0.0, 0.0)
    accel_saturation_mps2: float = 150.0     # ~15 g
    gyro_saturation_rad_s: float = 10.0      # ~570 deg/s
    dv_lsb_mps: float = 0.0
    dtheta_lsb_rad: float = 0.0
    position_body_m: tuple = (0.0, 0.0, 0.0)

    def __post_init__(self):
        for f in ("accel_bias_mps2", "gyro_bias_rad_s", "accel_scale_factor",
                  "gyro_scale_factor", "position_body_m"):
            v = getattr(self, f)
            try:
                t = tuple(float(x) for x in v)
            except TypeError:
                t = ()
            if len(t) != 3 or any(math.isnan(x) for x in t):
                raise ConfigError(f"ImuConfig: field {f} = {v!r}; allowed: 3 finite numbers")
            object.__setattr__(self, f, t)
        for f, lo, hi in (("rate_hz", 1e-3, 1e6), ("accel_bias_sigma_mps2", 0.0, 100.0),
                          ("gyro_bias_sigma_rad_s", 0.0, 10.0), ("accel_noise_density", 0.0, 100.0),
                          ("gyro_noise_density", 0.0, 10.0), ("accel_saturation_mps2", 1e-6, math.inf),
                          ("gyro_saturation_rad_s", 1e-6, math.inf), ("dv_lsb_mps", 0.0, 10.0),
                          ("dtheta_lsb_rad", 0.0, 1.0)):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < lo or v > hi:
                raise ConfigError(f"ImuConfig: field {f} = {v!r} is out of range; allowed: {lo:g} <= {f} <= {hi:g}")
        for f in ("accel_scale_factor", "gyro_scale_factor"):
            if any(abs(x) > 0.5 for x in getattr(self, f)):
                raise ConfigError(f"ImuConfig: field {f} = {getattr(self, f)!r} is out of range; "
                                  "allowed: each -0.5 <= scale factor error <= 0.5")

    @classmethod
    def ideal(cls, rate_hz: float = 400.0) -> "ImuConfig":
        """No errors at all (saturation far away)."""
        return cls(rate_hz=rate_hz, accel_saturation_mps2=1e9, gyro_saturation_rad_s=1e9)

    @classmethod
    def navigation_grade(cls, rate_hz: float = 400.0) -> "ImuConfig":
        """Honeywell GG1308-class (landing-failures.md: 400 Hz, gyro bias
        < 1 deg/h, accel bias < 100 micro-g); noise densities typical of the
        class: ARW 0.005 deg/sqrt(h), VRW 50 micro-g/sqrt(Hz); 100 ppm scale factor."""
        return cls._grade("navigation", rate_hz)

    @classmethod
    def tactical_grade(cls, rate_hz: float = 400.0) -> "ImuConfig":
        """Litton LN-200 class (landing-failures.md: gyro bias 1 deg/h, accel
        bias 500 micro-g); ARW 0.07 deg/sqrt(h), VRW 100 micro-g/sqrt(Hz),
        300 ppm scale factor."""
        return cls._grade("tactical", rate_hz)

    @classmethod
    def _grade(cls, grade: str, rate_hz: float) -> "ImuConfig":
        bias_a, bias_g, vrw, arw, sf_a, sf_g = _GRADES[grade]
        return cls(rate_hz=rate_hz, accel_bias_sigma_mps2=bias_a, gyro_bias_sigma_rad_s=bias_g,
                   accel_noise_density=vrw, gyro_noise_density=arw, accel_scale_factor=sf_a,
                   gyro_scale_factor=sf_g)

    @classmethod
    def from_dict(cls, d: dict, source: str = "ImuConfig") -> "ImuConfig":
        return config_from_dict(cls, d, source, "IMU")

    def replace(self, **kw) -> "ImuConfig":
        return _dc_replace(self, **kw)


#: IMU classes (ImuConfig.navigation_grade, .tactical_grade): accelerometer and gyro bias sigma
#: (m/s^2, rad/s), velocity and angle random walk (m/s^2/sqrt(Hz), rad/s/sqrt(Hz)), accelerometer
#: and gyro scale-factor errors per axis (fraction)
_GRADES = {
    "navigation": (100 * _UG, 1.0 * _DEG / 3600.0, 50 * _UG, 0.005 * _DEG / 60.0, (1e-4, -1e-4, 1e-4), (1e-4, 1e-4, -1e-4)),
    "tactical": (500 * _UG, 1.0 * _DEG / 3600.0, 100 * _UG, 0.07 * _DEG / 60.0, (3e-4, -3e-4, 3e-4), (1e-4, 1e-4, -1e-4)),
}


def _model_flag(name: str, doc: str) -> property:
    """A bool attribute of the Imu kept as 0/1 in its model vector (MODEL_FIELDS ``name``)."""
    def get(self) -> bool:
        return self._model[MODEL_FIELDS.index(name)] != 0.0

    def put(self, value: bool) -> None:
        self._model[MODEL_FIELDS.index(name)] = 1.0 if value else 0.0
    return property(get, put, doc=doc)


class Imu:
    """See the module docstring."""

    @staticmethod
    def kernel_array_sizes() -> tuple:
        """Sizes of ``kernel_arrays()``: model, accumulator, noise block (6 normals a row), reading."""
        return (len(MODEL_FIELDS), len(ACC_FIELDS), _BLOCK * 6, len(READING_FIELDS))

    def __init__(self, config: ImuConfig, rng: np.random.Generator):
        self.config = config
        self.rng = rng
        c = config
        tb = rng.standard_normal(6).tolist()   # turn-on biases: always 6 draws
        accel_bias = tuple(c.accel_bias_mps2[i] + c.accel_bias_sigma_mps2 * tb[i] for i in range(3))
        gyro_bias = tuple(c.gyro_bias_rad_s[i] + c.gyro_bias_sigma_rad_s * tb[3 + i] for i in range(3))
        ka = tuple(1.0 + x for x in c.accel_scale_factor)
        kg = tuple(1.0 + x for x in c.gyro_scale_factor)
        lever = c.position_body_m != (0.0, 0.0, 0.0)
        noisy = c.accel_noise_density > 0.0 or c.gyro_noise_density > 0.0
        # the measurement model as one float64 vector for the kernels (MODEL_FIELDS)
        self._model = np.array([*ka, *accel_bias, c.accel_saturation_mps2,
                                *kg, *gyro_bias, c.gyro_saturation_rad_s,
                                *c.position_body_m, 1.0 if lever else 0.0, 1.0 if noisy else 0.0,
                                c.accel_noise_density, c.gyro_noise_density, _BLOCK,
                                (1.0 / c.rate_hz) * (1.0 - 1e-9),   # shortest valid read interval, s
                                c.dv_lsb_mps, c.dtheta_lsb_rad, 0.0, 0.0, 0.0])
        # increments since the last read: dv (m/s, 3), dtheta (rad, 3), interval (s) (ACC_FIELDS)
        self._acc = np.zeros(len(ACC_FIELDS))
        # unit normal draws, six per accumulate, drawn in blocks of _BLOCK rows (row-major)
        self._noise = np.zeros(_BLOCK * 6)
        # the last reading, the running sums of the reported increments (f64) after and before
        # it, the quantisation residuals (READING_FIELDS)
        self._out = np.zeros(len(READING_FIELDS))
        self._accumulate = load_accumulate_kernel()[0]
        self._read = load_read_kernel()[0]

    # fault hooks (scenarios, tests): kept in the model vector, where the read kernel sees them
    accel_zero = _model_flag("accel_zero", "The accelerometers read exactly 0 (Luna-25).")
    gyro_zero = _model_flag("gyro_zero", "The gyros read exactly 0.")
    failed = _model_flag("failed", "Every reading is flagged invalid (Beresheet).")

    def refill_noise(self) -> None:
        """Draw the next block of unit normals (the accumulate kernel asked for it)."""
        self._noise[:] = self.rng.standard_normal((_BLOCK, 6)).ravel()
        self._model[_M_NOISE_NEXT] = 0.0

    def kernel_arrays(self):
        """``(model, acc, noise, reading)``: the arrays ``accumulate_kernel`` and ``read_kernel``
        work on (MODEL_FIELDS, ACC_FIELDS, the noise block, READING_FIELDS), for a compiled cycle
        that composes the IMU with the plant (harness/cycle.py). When the accumulate kernel
        returns ACC_NEEDS_NOISE, call ``refill_noise()``."""
        return self._model, self._acc, self._noise, self._out

    def use_kernel_arrays(self, model, acc, noise, reading) -> None:
        """Keep the model, accumulator, noise block and reading in these arrays from now on (same
        shapes; the current values are copied in): a compiled cycle lays several models out in
        one block."""
        for new, old in zip((model, acc, noise, reading), self.kernel_arrays()):
            if new.shape != old.shape:
                raise ValueError(f"IMU kernel array of shape {new.shape}; expected {old.shape}")
            new[...] = old
        self._model, self._acc, self._noise, self._out = model, acc, noise, reading

    @property
    def accel_bias(self) -> tuple:
        """This unit's accelerometer bias (m/s^2, body axes): configured + turn-on draw. Fixed for
        the run (bias faults add theirs to the readings, harness/faults.py)."""
        return tuple(self._model[3:6].tolist())

    @property
    def gyro_bias(self) -> tuple:
        """This unit's gyro bias (rad/s, body axes), fixed for the run like ``accel_bias``."""
        return tuple(self._model[10:13].tolist())

    def accumulate(self, specific_force_body, w_body, dt: float) -> None:
        """Integrate one plant step (dt, s) of specific force (m/s^2) and rate (rad/s)."""
        if dt <= 0.0:
            return
        fx, fy, fz = specific_force_body
        wx, wy, wz = w_body
        while self._accumulate(self._model, self._acc, self._noise, float(fx), float(fy), float(fz),
                               float(wx), float(wy), float(wz), float(dt)) == ACC_NEEDS_NOISE:
            self.refill_noise()

    def accumulate_from_plant(self, plant) -> None:
        """Convenience: accumulate the plant's last step (mean f and w, its dt)."""
        f, w, dt = plant.imu_inputs()
        self.accumulate(f, w, dt)

    def read(self) -> ImuReading:
        """Return the increments since the last read and reset them (``read_kernel``)."""
        self._read(self._model, self._acc, self._out)
        return self.reading()

    def reading(self) -> ImuReading:
        """The last ``read()``'s reading again (a compiled cycle reads at the end of its substeps)."""
        o = self._out.tolist()
        return _new_reading(ImuReading, ((o[0], o[1], o[2]), (o[3], o[4], o[5]), o[6], o[7] != 0.0,
                                         (o[8], o[9], o[10]), (o[11], o[12], o[13])))

    def report(self, reading: ImuReading) -> ImuReading:
        """The last ``read()``'s reading as finally reported (e.g. altered by a fault): the
        accumulators are redone from the increments in ``reading``; returns it with them."""
        dv, dth = reading.dv_body, reading.dtheta_body
        o = self._out
        pv0, pv1, pv2, pt0, pt1, pt2 = o[14:20].tolist()
        av = (pv0 + dv[0], pv1 + dv[1], pv2 + dv[2])
        at = (pt0 + dth[0], pt1 + dth[1], pt2 + dth[2])
        o[8:14] = av + at
        return reading._replace(dv_accum_body=av, dtheta_accum_body=at)

#: The accumulate kernel's measurement model (``Imu.kernel_arrays()[0]``): accelerometer scale
#: (1 + error) and bias (m/s^2) per axis, saturation (m/s^2); the same for the gyros (rad/s);
#: the IMU position (m, body), lever-arm term on (0/1), noise on (0/1), noise densities, the row of
#: the noise block to use next, the shortest valid read interval (s), the quantisation steps
#: (m/s, rad; 0: none), and the fault hooks accel_zero, gyro_zero, failed (0/1).
MODEL_FIELDS = ("ka_x", "ka_y", "ka_z", "ba_x", "ba_y", "ba_z", "accel_sat", "kg_x", "kg_y", "kg_z",
                "bg_x", "bg_y", "bg_z", "gyro_sat", "pos_x", "pos_y", "pos_z", "lever", "noisy",
                "accel_noise_density", "gyro_noise_density", "noise_next", "dt_min_s", "dv_lsb_mps",
                "dtheta_lsb_rad", "accel_zero", "gyro_zero", "failed")
_M_NOISE_NEXT = MODEL_FIELDS.index("noise_next")
#: A reading (``Imu.read``): dv (m/s, body), dtheta (rad, body), interval (s), valid (0/1), the running
#: sums of the reported dv and dtheta after it and before it, the quantisation residuals.
READING_FIELDS = ("dv_x", "dv_y", "dv_z", "dtheta_x", "dtheta_y", "dtheta_z", "dt_s", "valid",
                  "dv_accum_x", "dv_accum_y", "dv_accum_z", "dtheta_accum_x", "dtheta_accum_y", "dtheta_accum_z",
                  "dv_accum_prev_x", "dv_accum_prev_y", "dv_accum_prev_z", "dtheta_accum_prev_x",
                  "dtheta_accum_prev_y", "dtheta_accum_prev_z", "dv_residual_x", "dv_residual_y", "dv_residual_z",
                  "dtheta_residual_x", "dtheta_residual_y", "dtheta_residual_z")
#: Its accumulator: dv (m/s, body), dtheta (rad, body), interval (s) since the last read.
ACC_FIELDS = ("dv_x", "dv_y", "dv_z", "dtheta_x", "dtheta_y", "dtheta_z", "dt_s")
ACC_DONE, ACC_NEEDS_NOISE = 0, 1


def saturate(a, sat):
    """a clamped to [-sat, sat], written as Python's max(-sat, min(sat, a)) evaluates it (NaN
    included: a NaN reading saturates high). Compiled into the kernels (``load_accumulate_kernel``)."""
    a = a if a < sat else sat
    return a if a > -sat else -sat


def accumulate_kernel(model, acc, noise, fx, fy, fz, wx, wy, wz, dt):
    """Integrate one step of dt (s) of mean specific force f (m/s^2) and rate w (rad/s), body axes,
    into acc, by the module docstring's measurement model; noise: the block of unit normals, six
    per step (row-major), the next row at model's noise_next. Returns ACC_NEEDS_NOISE (nothing
    changed) when the noise block is used up (``Imu.refill_noise``), else ACC_DONE.
    Plain Python on floats that numba compiles (``load_accumulate_kernel``)."""
    noisy = model[18] != 0.0
    row = int(model[21])
    if noisy and 6 * row >= noise.shape[0]:
        return 1  # ACC_NEEDS_NOISE
    if model[17] != 0.0:
        rx = model[14]
        ry = model[15]
        rz = model[16]
        # w x (w x r)
        ax = wy * rz - wz * ry
        ay = wz * rx - wx * rz
        az = wx * ry - wy * rx
        fx += wy * az - wz * ay
        fy += wz * ax - wx * az
        fz += wx * ay - wy * ax
    asat = model[6]
    gsat = model[13]
    ax = model[0] * fx + model[3]
    ay = model[1] * fy + model[4]
    az = model[2] * fz + model[5]
    gx = model[7] * wx + model[10]
    gy = model[8] * wy + model[11]
    gz = model[9] * wz + model[12]
    if not (-asat <= ax <= asat and -asat <= ay <= asat and -asat <= az <= asat):
        ax, ay, az = saturate(ax, asat), saturate(ay, asat), saturate(az, asat)
    if not (-gsat <= gx <= gsat and -gsat <= gy <= gsat and -gsat <= gz <= gsat):
        gx, gy, gz = saturate(gx, gsat), saturate(gy, gsat), saturate(gz, gsat)
    if noisy:
        sq = math.sqrt(dt)
        sa = model[19] * sq
        sg = model[20] * sq
        acc[0] = acc[0] + (ax * dt + sa * noise[6 * row + 0])
        acc[1] = acc[1] + (ay * dt + sa * noise[6 * row + 1])
        acc[2] = acc[2] + (az * dt + sa * noise[6 * row + 2])
        acc[3] = acc[3] + (gx * dt + sg * noise[6 * row + 3])
        acc[4] = acc[4] + (gy * dt + sg * noise[6 * row + 4])
        acc[5] = acc[5] + (gz * dt + sg * noise[6 * row + 5])
        model[21] = row + 1.0
    else:
        acc[0] = acc[0] + ax * dt
        acc[1] = acc[1] + ay * dt
        acc[2] = acc[2] + az * dt
        acc[3] = acc[3] + gx * dt
        acc[4] = acc[4] + gy * dt
        acc[5] = acc[5] + gz * dt
    acc[6] = acc[6] + dt
    return 0  # ACC_DONE


def read_kernel(model, acc, out):
    """The reading of the increments in acc since the last read, into out (READING_FIELDS); acc
    is reset. Quantisation to whole counts of the model's steps carries the remainder into the
    next read, as an IMU's counters do; accel_zero / gyro_zero read 0, failed flags it invalid,
    as does an interval shorter than one IMU sample. The running sums follow the reading.
    Plain Python on floats that numba compiles (``load_read_kernel``)."""
    # quantisation: whole counts of the step (dv: model[23], dtheta: model[24]; 0: none), the
    # remainder carried in out[20:26] into the next read
    for j in range(6):
        lsb = model[23] if j < 3 else model[24]
        if lsb > 0.0:
            x = acc[j] + out[20 + j]
            k = round(x / lsb) * lsb
            out[20 + j] = x - k
            acc[j] = k
    dvx = acc[0]
    dvy = acc[1]
    dvz = acc[2]
    thx = acc[3]
    thy = acc[4]
    thz = acc[5]
    dt = acc[6]
    for i in range(7):
        acc[i] = 0.0
    if model[25] != 0.0:
        dvx = dvy = dvz = 0.0
    if model[26] != 0.0:
        thx = thy = thz = 0.0
    out[0] = dvx
    out[1] = dvy
    out[2] = dvz
    out[3] = thx
    out[4] = thy
    out[5] = thz
    out[6] = dt
    out[7] = 1.0 if (model[27] == 0.0 and dt >= model[22]) else 0.0
    for i in range(6):
        out[14 + i] = out[8 + i]
    out[8] = out[14] + dvx
    out[9] = out[15] + dvy
    out[10] = out[16] + dvz
    out[11] = out[17] + thx
    out[12] = out[18] + thy
    out[13] = out[19] + thz


_READ = None


def load_read_kernel():
    """``(kernel, compiled)``: read_kernel compiled by numba (once per process, cached on disk), or
    the plain-Python one without numba or with ``NUMBA_DISABLE_JIT=1``."""
    global _READ
    if _READ is None:
        _READ = (compile_kernel(read_kernel, lambda nb: nb.void(nb.float64[::1], nb.float64[::1], nb.float64[::1]))
                 if load_accumulate_kernel()[1] else (read_kernel, False))
    return _READ


_ACCUMULATE = None


def load_accumulate_kernel():
    """``(kernel, compiled)``: accumulate_kernel compiled by numba (once per process, cached on
    disk), or the plain-Python one without numba or with ``NUMBA_DISABLE_JIT=1``."""
    global _ACCUMULATE
    if _ACCUMULATE is None:
        def sig(nb):
            f8, a8 = nb.float64, nb.float64[::1]
            return nb.int64(a8, a8, a8, f8, f8, f8, f8, f8, f8, f8)
        _ACCUMULATE = compile_kernel(accumulate_kernel, sig, (saturate,))
    return _ACCUMULATE
