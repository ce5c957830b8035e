"""A small self-contained lander plant for testing the C flight code on its own (a helper module,
not a test file: pytest does not collect it). Used by tests/test_c_flightcode.py and
tests/test_c_monitors.py.

Deliberately simple and independent of the harness's plant models: rigid body, point-mass
gravity, first-order engine lag (optionally slew-limited), RCS torque limits, ideal IMU, LRF
over flat (optionally stepped) terrain. Frames: MCI, the site at +x; SI units.
"""
from __future__ import annotations

import math

import numpy as np

from cfsw import G0, GM, Q_UP, R_MOON, qmul, qrot


class MiniPlant:
    """Minimal 6-DoF lander above a flat site at MCI +x.

    ``terrain(t)``: height of the ground under the lander (m, 0 = the site); ``lrf_latency``
    (s) and ``lrf_valid_below`` (m, None: always valid) are for the caller's LRF sampling;
    ``thrust_scale``: actual / commanded thrust (the propellant flow scales with it);
    ``accel_zero(t)``: the accelerometers read exactly 0 (IMU still valid). Class settings:
    engine lag ``TAU`` (s), throttle slew limit ``SLEW`` (1/s, None: none), ``SUBSTEPS``
    integration steps per cycle."""

    I = np.diag([450.0, 480.0, 550.0])
    TMAX, TMIN, ISP, TAU = 4000.0, 0.2, 320.0, 0.15
    SLEW: float | None = None
    SUBSTEPS = 4
    RCS = np.array([40.0, 40.0, 30.0])
    LRF_POS = np.array([0.5, 0.0, -0.6])  # body, relative to the centre of mass (reference lander)

    def __init__(self, h0=3000.0, v0=(-60.0, 1.5, -1.0), mass=700.0, q0=Q_UP, terrain=lambda t: 0.0,
                 lrf_latency=0.2, lrf_valid_below=None, thrust_scale=1.0, accel_zero=lambda t: False):
        self.r = np.array([R_MOON + h0, 0.0, 0.0])
        self.v = np.array(v0, float)
        self.q = np.array(q0, float)
        self.w = np.zeros(3)
        self.m = mass
        self.thr = 0.0            # actual throttle state (fraction of TMAX)
        self.t = 0.0
        self.terrain = terrain
        self.lrf_latency = lrf_latency
        self.lrf_valid_below = lrf_valid_below
        self.scale = thrust_scale
        self.accel_zero = accel_zero
        self.lrf_hist = []        # (t, slant range, true height above the terrain) after each cycle
        self.landed = None

    def height(self):
        return float(np.linalg.norm(self.r)) - R_MOON

    def vr(self):
        """Radial (upward) velocity, m/s."""
        return float(self.v @ self.r / np.linalg.norm(self.r))

    def slant_range(self):
        up = self.r / np.linalg.norm(self.r)
        c = -float(qrot(self.q, np.array([0.0, 0.0, -1.0])) @ up)
        h = self.height() + float(qrot(self.q, self.LRF_POS) @ up) - self.terrain(self.t)
        return h / c if c > 0.05 else float("inf")

    def advance(self, throttle, torque, engine_on, dt=0.02):
        """One flight-code cycle of ``dt`` s; returns the IMU increments (dv, dtheta), body."""
        h = dt / self.SUBSTEPS
        u = min(max(throttle, self.TMIN), 1.0) if engine_on else 0.0
        tau = np.clip(np.array(torque, float), -self.RCS, self.RCS)
        dv = np.zeros(3)
        dth = np.zeros(3)
        for _ in range(self.SUBSTEPS):
            d = (u - self.thr) * h / self.TAU
            self.thr += d if self.SLEW is None else max(-self.SLEW * h, min(self.SLEW * h, d))
            thrust = self.thr * self.TMAX * self.scale
            f_body = np.array([0.0, 0.0, thrust / self.m])
            rn = np.linalg.norm(self.r)
            self.v = self.v + (qrot(self.q, f_body) - GM * self.r / rn**3) * h
            self.r = self.r + self.v * h
            self.w = self.w + np.linalg.solve(self.I, tau - np.cross(self.w, self.I @ self.w)) * h
            self.q = qmul(self.q, np.concatenate([[1.0], 0.5 * self.w * h]))
            self.q /= np.linalg.norm(self.q)
            self.m -= thrust / (self.ISP * G0) * h
            dv += f_body * h
            dth += self.w * h
            self.t += h
            if self.landed is None and self.height() <= self.terrain(self.t):
                up = self.r / np.linalg.norm(self.r)
                vv = float(self.v @ up)
                tilt = math.degrees(math.acos(max(-1.0, min(1.0, float(qrot(self.q, np.array([0, 0, 1.0])) @ up)))))
                self.landed = dict(t=self.t, v_vert=vv, v_horiz=float(np.linalg.norm(self.v - vv * up)),
                                   tilt_deg=tilt, mass=self.m)
        self.lrf_hist.append((self.t, self.slant_range(), self.height() - self.terrain(self.t)))
        if self.accel_zero(self.t):
            dv = np.zeros(3)
        return dv, dth
