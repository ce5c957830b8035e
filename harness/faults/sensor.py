"""Sensor-layer faults: what the LRF and the IMU deliver to the flight code."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from harness.faults.base import Fault

_new = tuple.__new__


def lrf_reading(r, range_m: float, valid: bool):
    """``r._replace(range_m=range_m, valid=valid)`` for an LrfReading (range_m, valid, sample_t_s,
    new), built directly: the NamedTuple's _replace costs ~1 us, and the LRF faults run per cycle."""
    return _new(type(r), (range_m, valid, r[2], r[3]))


def imu_reading(r, dv_body, dtheta_body, dt_s: float, valid: bool):
    """``r._replace(dv_body=.., dtheta_body=.., dt_s=.., valid=..)`` for an ImuReading (dv_body,
    dtheta_body, dt_s, valid, dv_accum_body, dtheta_accum_body), built directly."""
    return _new(type(r), (dv_body, dtheta_body, dt_s, valid, r[4], r[5]))


# Sensor layer: LRF -----------------------------------------------------------------------
@dataclass(kw_only=True)
class LrfFault(Fault):
    """Base of the LRF faults: ``corrupt(reading)`` is what a valid reading becomes while the
    fault is active (None: it stays as it is); the effects are counted here."""

    layer: ClassVar[str] = "sensor"

    def lrf(self, r):
        if self.active and r.valid:
            out = self.corrupt(r)
            if out is not None:
                self.effects += 1
                return out
        return r

    def reset(self):
        self._lost_of = self._lost = None   # the last reading lost(), and what it made of it

    def corrupt(self, r):
        return None

    def lost(self, r):
        """The reading with no valid range (range 0 m, flagged invalid). A held reading comes
        back cycle after cycle as the same object: so does its lost copy."""
        if r is not self._lost_of:
            self._lost_of = r
            self._lost = lrf_reading(r, 0.0, False)
        return self._lost


@dataclass(kw_only=True)
class LrfNoOutput(LrfFault):
    """The LRF gives no valid range while active (IM-1: never armed; IM-1 uses duration inf)."""

    type_name: ClassVar[str] = "lrf_no_output"

    def corrupt(self, r):
        return self.lost(r)


@dataclass(kw_only=True)
class LrfLateAcquisition(LrfFault):
    """No valid LRF range until the true height above the terrain first drops to
    ``acquire_altitude_m`` (m) (ispace M2: spec 3,000 m, first valid sample below ~900 m)."""

    type_name: ClassVar[str] = "lrf_late_acquisition"
    acquire_altitude_m: float = 900.0

    def reset(self):
        super().reset()
        self.acquired = False

    def lrf(self, r):
        if self.acquired:
            return r
        if self.fs.altitude_m <= self.acquire_altitude_m:  # (a NaN altitude never acquires)
            self.acquired = True
            self.fs.retire(self)   # acquired for good: the identity from now on
            return r
        if self.active and r.valid:
            self.effects += 1
            return self.lost(r)
        return r


@dataclass(kw_only=True)
class LrfDropout(LrfFault):
    """Each new LRF sample is lost (flagged invalid) with probability ``prob``; a loss lasts
    ``burst_samples`` consecutive samples."""

    type_name: ClassVar[str] = "lrf_dropout"
    prob: float = 0.2
    burst_samples: int = 1

    def reset(self):
        super().reset()
        self.left = 0          # samples still to drop in the current burst
        self.dropping = False  # the sample being delivered is dropped

    def lrf(self, r):
        if not self.active:
            self.dropping = False
            return r
        if r.new:
            if self.left > 0:
                self.left -= 1
                self.dropping = True
            else:
                self.dropping = bool(self.rng.random() < self.prob)
                if self.dropping:
                    self.left = self.burst_samples - 1
        if self.dropping and r.valid:
            self.effects += 1
            return self.lost(r)
        return r


@dataclass(kw_only=True)
class LrfBias(LrfFault):
    """Range + ``bias_m`` (m)."""

    type_name: ClassVar[str] = "lrf_bias"
    bias_m: float = 50.0

    def corrupt(self, r):
        return lrf_reading(r, max(0.0, r.range_m + self.bias_m), r.valid)


@dataclass(kw_only=True)
class LrfScale(LrfFault):
    """Range * (1 + ``scale_error``) (dimensionless; 0.05 = reads 5 % long)."""

    type_name: ClassVar[str] = "lrf_scale"
    scale_error: float = 0.05

    def corrupt(self, r):
        return lrf_reading(r, max(0.0, r.range_m * (1.0 + self.scale_error)), r.valid)


@dataclass(kw_only=True)
class LrfStuck(LrfFault):
    """The LRF keeps reporting one range, flagged valid and new: ``value_m`` (m), or, when
    None, the last valid range before the fault started."""

    type_name: ClassVar[str] = "lrf_stuck"
    value_m: float | None = None

    def reset(self):
        super().reset()
        self.last = None

    def lrf(self, r):
        if not self.active:
            if r.valid:
                self.last = r.range_m
            return r
        v = self.value_m if self.value_m is not None else self.last
        if v is None:
            return r
        self.effects += 1
        return lrf_reading(r, float(v), True)


@dataclass(kw_only=True)
class LrfNoise(LrfFault):
    """Extra range noise N(0, ``sigma_m``) and, with probability ``outlier_prob`` per sample,
    an outlier N(0, ``outlier_sigma_m``) (IM-2: noisy altimeter that never cleared)."""

    type_name: ClassVar[str] = "lrf_noise"
    sigma_m: float = 10.0
    outlier_prob: float = 0.0
    outlier_sigma_m: float = 0.0

    def reset(self):
        super().reset()
        self.cur = None

    def corrupt(self, r):
        if r.new or self.cur is None:
            n1, n2 = self.rng.standard_normal(2)
            u = self.rng.random()
            err = self.sigma_m * n1 + (self.outlier_sigma_m * n2 if u < self.outlier_prob else 0.0)
            self.cur = max(0.0, r.range_m + err)
        return lrf_reading(r, self.cur, r.valid)


@dataclass(kw_only=True)
class LrfMaxRange(LrfFault):
    """The LRF's maximum range drops to ``max_range_m`` (m): longer ranges are invalid."""

    type_name: ClassVar[str] = "lrf_max_range"
    max_range_m: float = 1000.0

    def corrupt(self, r):
        return self.lost(r) if r.range_m > self.max_range_m else None


# Sensor layer: IMU -------------------------------------------------------------------------
@dataclass(kw_only=True)
class ImuFault(Fault):
    """Base of the IMU faults: ``corrupt(reading)`` is what each reading becomes while the fault
    is active (every one counted as an effect)."""

    layer: ClassVar[str] = "sensor"

    def imu(self, r):
        return self.while_active(r)

    @staticmethod
    def added(r, dv_mps, dtheta_rad):
        """The reading with ``dv_mps`` (m/s, body x y z) and ``dtheta_rad`` (rad) added to its
        increments."""
        return imu_reading(r, tuple(x + d for x, d in zip(r.dv_body, dv_mps)),
                           tuple(x + d for x, d in zip(r.dtheta_body, dtheta_rad)), r.dt_s, r.valid)


@dataclass(kw_only=True)
class ImuBias(ImuFault):
    """Accelerometer bias ``accel_bias_mps2`` (m/s^2, body x y z) and gyro bias
    ``gyro_bias_rad_s`` (rad/s): the increments get bias * dt added."""

    type_name: ClassVar[str] = "imu_bias"
    accel_bias_mps2: tuple = (0.0, 0.0, 0.05)
    gyro_bias_rad_s: tuple = (0.0, 0.0, 0.0)

    def corrupt(self, r):
        dt = r.dt_s
        return self.added(r, [a * dt for a in self.accel_bias_mps2], [g * dt for g in self.gyro_bias_rad_s])


@dataclass(kw_only=True)
class ImuNoise(ImuFault):
    """Extra white noise: accelerometer ``accel_noise_density`` (m/s^2/sqrt(Hz)) and gyro
    ``gyro_noise_density`` (rad/s/sqrt(Hz)); an increment over dt gets N(0, N sqrt(dt))."""

    type_name: ClassVar[str] = "imu_noise"
    accel_noise_density: float = 0.01
    gyro_noise_density: float = 0.0

    def corrupt(self, r):
        n = self.rng.standard_normal(6)
        sq = math.sqrt(max(r.dt_s, 0.0))
        sa, sg = self.accel_noise_density * sq, self.gyro_noise_density * sq
        return self.added(r, [sa * n[i] for i in range(3)], [sg * n[3 + i] for i in range(3)])


@dataclass(kw_only=True)
class ImuStuckZero(ImuFault):
    """Accelerometers (``accel``) and/or gyros (``gyro``) read exactly zero while the IMU
    still reports itself valid (Luna-25: accelerometers never switched on)."""

    type_name: ClassVar[str] = "imu_stuck_zero"
    accel: bool = True
    gyro: bool = False

    def corrupt(self, r):
        return imu_reading(r, (0.0, 0.0, 0.0) if self.accel else r.dv_body,
                           (0.0, 0.0, 0.0) if self.gyro else r.dtheta_body, r.dt_s, r.valid)


@dataclass(kw_only=True)
class ImuGlitch(ImuFault):
    """IMU glitch. ``mode``: ``invalid`` (outputs flagged invalid), ``spike`` (increments
    replaced by dv = ``spike_dv_mps`` (m/s, 3) and dtheta = ``spike_dtheta_rad`` (rad, 3),
    flagged valid) or ``reset_gap`` (IMU resetting: no data, increments lost, dt 0, invalid)."""

    type_name: ClassVar[str] = "imu_glitch"
    MODES: ClassVar[tuple] = ("invalid", "spike", "reset_gap")
    mode: str = "invalid"
    spike_dv_mps: tuple = (0.0, 0.0, 5.0)
    spike_dtheta_rad: tuple = (0.0, 0.0, 0.0)

    def corrupt(self, r):
        if self.mode == "invalid":
            return imu_reading(r, r.dv_body, r.dtheta_body, r.dt_s, False)
        if self.mode == "spike":
            return imu_reading(r, tuple(self.spike_dv_mps), tuple(self.spike_dtheta_rad), r.dt_s, r.valid)
        return imu_reading(r, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0.0, False)
