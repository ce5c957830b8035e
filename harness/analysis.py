"""Post-flight analysis on the recorded truth: deceleration margin and the point of no return.

All inputs are numpy arrays sampled once per flight-code cycle; SI units.
"""
from __future__ import annotations

import numpy as np


def stopping_distance(v_down: np.ndarray, accel_net_max: np.ndarray, lag_s: float = 0.0,
                      v_final: float = 0.0) -> np.ndarray:
    """Height needed to slow a descent from ``v_down`` to ``v_final`` (m/s, positive down) with
    net upward deceleration ``accel_net_max`` (m/s^2): ``(v^2 - v_final^2) / (2 a) + v * lag``;
    0 where already at or below ``v_final``; inf where a <= 0 and v > v_final."""
    v = np.maximum(np.asarray(v_down, dtype=float), 0.0)
    a = np.asarray(accel_net_max, dtype=float)
    excess = np.maximum(v * v - v_final * v_final, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(a > 0, excess / (2.0 * np.where(a > 0, a, 1.0)), np.where(excess > 0, np.inf, 0.0))
    return d + np.where(excess > 0, v * lag_s, 0.0)


def deceleration_margin(altitude_m, v_down, mass_kg, thrust_max_n, gravity_mps2, lag_s: float = 0.0,
                        v_touchdown: float = 0.0):
    """Per sample: height left above the distance full thrust needs to slow the descent to
    ``v_touchdown`` (m; negative = can no longer reach the surface at or below that speed).

    Full thrust is taken as pointing straight up and the mass as constant through the stop, both
    in the lander's favour only slightly (mass loss would help a little), so a negative margin is
    a sound "cannot stop" at that instant.
    """
    a_net = thrust_max_n / np.asarray(mass_kg, dtype=float) - np.asarray(gravity_mps2, dtype=float)
    return np.asarray(altitude_m, dtype=float) - stopping_distance(v_down, a_net, lag_s, v_touchdown)


def point_of_no_return(t_s, margin_m) -> int | None:
    """Index of the first sample from which the margin stays negative to the end of the record.

    None when the record ends with a non-negative margin (the lander could still be saved).
    """
    margin = np.asarray(margin_m)
    if margin.size == 0 or margin[-1] >= 0:
        return None
    ok = np.nonzero(margin >= 0)[0]
    return int(ok[-1] + 1) if ok.size else 0
