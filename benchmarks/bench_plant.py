"""Benchmark of the plant and sensor models (not a timed test).

    python benchmarks/bench_plant.py [--cycles N] [--repeat R]

Measures:
  * microseconds per plant RK4 step (dt = 20 ms, engine on, throttle changing
    so the lag/slew path runs, RCS torques on);
  * ray casts per terrain (flat sphere, procedural crater field, M1 rim step);
  * plant + sensors alone for one 50 Hz flight cycle: one plant step, IMU
    accumulate + read, LRF update (10 Hz and 50 Hz), altitude_agl; reported
    as microseconds per cycle and the real-time factor 20 ms / cycle time,
    over a powered terminal descent (simple Python vertical-speed controller
    standing in for the flight code, whose cost is not counted here).

Best of R repeats (least disturbed by other processes). Numbers go into
docs/models.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from harness.frames import SiteFrame, quat_rotate  # noqa: E402
from harness.lander import load_lander  # noqa: E402
from harness.plant import ActuatorCommand, Plant, initial_state  # noqa: E402
from harness.terrain import crater_rim_step, flat, procedural_craters  # noqa: E402
from sensor_models.imu import Imu, ImuConfig  # noqa: E402
from sensor_models.lrf import LaserRangefinder, LrfConfig  # noqa: E402

SITE = SiteFrame()
DT = 0.02


def best(fn, repeat):
    """Best of `repeat` runs, per unit of work, in wall-clock seconds.

    With --cpu, process CPU time instead (robust when other jobs share the
    cores; the figure the code itself costs)."""
    out = []
    clock = time.process_time if CPU_TIME else time.perf_counter
    for _ in range(repeat):
        t0 = clock()
        n = fn()
        out.append((clock() - t0) / n)
    return min(out)


CPU_TIME = False


def bench_step(lander, repeat, n=20000):
    def run():
        # high enough that 400 s of flight never reach the ground
        st = initial_state(SITE, lander, 1e6, propellant_kg="terminal_descent", v_up=-50.0)
        p = Plant(lander, flat(SITE), st)
        cmds = [ActuatorCommand(0.25 + 0.2 * math.sin(0.01 * k), True, (1.0, -2.0, 0.5)) for k in range(n)]
        for c in cmds:
            p.step(c, DT)
        return n
    return best(run, repeat)


def bench_ray(terrain, repeat, n=5000):
    rng = np.random.default_rng(0)
    rays = []
    for _ in range(n):
        e, nn = rng.uniform(-14000, 14000, size=2)
        o = SITE.surface_point_mci(e, nn, rng.uniform(500, 8000))
        tilt = rng.uniform(0, 0.5)
        q = SITE.q_tilted(tilt, rng.uniform(0, 2 * math.pi))
        rays.append((o, quat_rotate(q, (0.0, 0.0, -1.0))))

    def run():
        for o, d in rays:
            terrain.ray_cast(o, d, 20000.0)
        return n
    return best(run, repeat)


def bench_cycle(lander, terrain, lrf_hz, repeat, cycles):
    """Plant + sensors per 50 Hz cycle over a terminal descent from 3 km."""
    def run():
        rng = np.random.default_rng(1)
        st = initial_state(SITE, lander, 3000.0 + terrain.height_at(SITE.r_mci), -2000.0, 0.0, 20.0, 0.0, -60.0,
                           propellant_kg="terminal_descent")
        p = Plant(lander, terrain, st)
        lrf = LaserRangefinder(LrfConfig(rate_hz=lrf_hz, latency_s=0.04, noise_sigma_m=0.5, noise_frac=1e-3,
                                         dropout_prob=0.01), rng, lander.lrf_boresight_body,
                               lander.lrf_position_body_m)
        imu = Imu(ImuConfig.navigation_grade(), rng)
        k = 0
        g = 1.62
        cmd = ActuatorCommand(0.0, True, (0.0, 0.0, 0.0))
        while k < cycles and not p.touched_down:
            s = p.state
            alt = p.altitude_agl()
            ir = imu.read()
            lr = lrf.update(s.t_s, s, terrain)
            # stand-in flight code: track a vertical speed profile (truth-based)
            r = s.r_mci
            rn = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
            vup = (s.v_mci[0] * r[0] + s.v_mci[1] * r[1] + s.v_mci[2] * r[2]) / rn
            vref = -max(1.5, min(60.0, 0.05 * alt))
            acc = g + 0.8 * (vref - vup)
            cmd = ActuatorCommand(acc * s.mass_kg / p.thrust_max_n, True, (0.0, 0.0, 0.0))
            p.step(cmd, DT)
            imu.accumulate_from_plant(p)
            k += 1
            del ir, lr
        return k
    return best(run, repeat)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", action="store_true", help="time with process CPU time instead of wall clock")
    a = ap.parse_args(argv)
    global CPU_TIME
    CPU_TIME = a.cpu
    L = load_lander("reference")
    print(f"python {platform.python_version()} on {platform.machine()}, numpy {np.__version__}; "
          f"clock: {'process CPU time' if a.cpu else 'wall'}; load average {os.getloadavg()[0]:.2f}")
    us = bench_step(L, a.repeat) * 1e6
    print(f"plant RK4 step (dt 20 ms, engine + RCS):        {us:7.2f} us")
    terrains = {
        "flat": flat(SITE),
        "craters": procedural_craters(SITE, np.random.default_rng(2), extent_m=15000.0, spacing_m=20.0,
                                      n_craters=400, min_radius_m=20.0, max_radius_m=1500.0),
        "m1-rim": crater_rim_step(SITE),
    }
    for name, t in terrains.items():
        print(f"ray cast, {name:8s}                              {bench_ray(t, a.repeat) * 1e6:7.2f} us")
    for name, t in terrains.items():
        for hz in (10.0, 50.0):
            c = bench_cycle(L, t, hz, a.repeat, a.cycles)
            print(f"plant+sensors per 50 Hz cycle, {name:8s} LRF {hz:4.0f} Hz: {c * 1e6:7.2f} us"
                  f"  -> {DT / c:7.0f}x real time")


if __name__ == "__main__":
    main()
