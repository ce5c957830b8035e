"""Cost of the laser rangefinder (LRF) model per sample, as the closed loop calls it (not a test).

    python benchmarks/bench_lrf.py [--scenario nominal-terminal-descent hakuto-r-m1] [--repeat 5]
                                   [--instructions]

For each scenario: flies it once on the loopback rig and records every call the loop makes to
the LRF (``update_from_vector`` with the plant's state vector, when a sample or a delivery may be
due), then replays those calls on a fresh LRF (same configuration, boresight, mounting and
terrain, the scenario's generator draws). The replay is the LRF's share of a flight and nothing
else, taken the way the loop takes it: by the compiled ``flat_sample_kernel`` over flat terrain
(the nominal descent), by the Python ``_sample`` over a height field (hakuto-r-m1: the crater
rim) or with ``NUMBA_DISABLE_JIT=1`` (which runs the Python path everywhere):

* microseconds per sample (best of ``--repeat`` replays, wall clock: the samples' ray casts,
  arithmetic and draws, and the deliveries between them, per sample) and per call;
* with ``--instructions``: the same per sample, counted by valgrind (callgrind) as the
  difference between replaying the calls 1 and 3 times, so start-up cancels out; reproducible to
  a few instructions (address randomisation off, one BLAS thread). Figures that, unlike the wall
  clock on a shared machine, do not move with the host's load.

The replay's readings are checked equal, bit for bit, to those the flight's LRF delivered.
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from harness.frames import SiteFrame  # noqa: E402
from harness.lander import load_lander  # noqa: E402
from harness.scenario_files import load_scenario  # noqa: E402
from harness.terrain import flat  # noqa: E402
from sensor_models.lrf import LaserRangefinder  # noqa: E402


class _Draws:
    """The LRF's generator in a recorded flight (``log``: what it drew, in order) or in a replay
    (hands out the recorded draws again): the flight's generator also feeds the IMU."""

    def __init__(self, generator=None, log=None):
        self.generator, self.log = generator, log if log is not None else []
        self._next = 0

    def _draw(self, how, shape):
        if self.generator is not None:
            a = getattr(self.generator, how)(shape)
            self.log.append(a)
            return a
        a = self.log[self._next]
        self._next += 1
        return a.copy()

    def standard_normal(self, shape):
        return self._draw("standard_normal", shape)

    def random(self, shape):
        return self._draw("random", shape)


def record(scenario_name: str) -> tuple[list, list]:
    """The LRF calls of one loopback flight of the scenario, ``(t_s, state vector, reading
    returned)`` for each ``update_from_vector``, and the LRF's draws, in order."""
    from harness.rigs import open_rig
    calls, draws = [], []
    update = LaserRangefinder.update_from_vector

    def update_rec(self, t_s, x, terrain):
        if not isinstance(self.rng, _Draws):
            self.rng = _Draws(self.rng, draws)
        reading = update(self, t_s, x, terrain)
        calls.append((t_s, x.copy(), tuple(reading)))
        return reading

    LaserRangefinder.update_from_vector = update_rec
    try:
        with open_rig("loopback") as up:
            up.fly(load_scenario(scenario_name))
    finally:
        LaserRangefinder.update_from_vector = update
    return calls, draws


def sensor_and_terrain(scenario_name: str, draws: list):
    """A maker of fresh LRFs and the terrain of the scenario, as the runner builds them; the LRF
    draws the recorded flight's draws."""
    sc = load_scenario(scenario_name)
    site = SiteFrame()
    terrain = sc.terrain(site) if sc.terrain else flat(site)
    lander = load_lander(sc.lander) if isinstance(sc.lander, str) else sc.lander
    return (lambda: LaserRangefinder(sc.lrf, _Draws(log=draws), lander.lrf_boresight_body,
                                     lander.lrf_position_body_m)), terrain


def replay(make, terrain, calls, times: int = 1):
    """Replays the calls ``times`` times, each on a fresh LRF; returns the readings of the last
    and the samples it took."""
    out, lrf = [], None
    for _ in range(times):
        lrf = make()
        update = lrf.update_from_vector
        out = [update(t_s, x, terrain) for t_s, x, _r in calls]
    return out, (lrf.samples_taken if lrf is not None else 0)


def same_bits(a, b) -> bool:
    return len(a) == len(b) and all(
        x[1:] == y[1:] and np.float64(x[0]).tobytes() == np.float64(y[0]).tobytes() for x, y in zip(a, b))


CHILD = """
import pickle, sys
sys.path.insert(0, sys.argv[1])
from benchmarks.bench_lrf import sensor_and_terrain, replay
calls, draws = pickle.load(open(sys.argv[2], "rb"))
make, terrain = sensor_and_terrain(sys.argv[3], draws)
replay(make, terrain, calls, 0)  # (imports, terrain build: outside the difference)
replay(make, terrain, calls, int(sys.argv[4]))
"""


def instructions(scenario_name: str, calls: list, draws: list, times: int) -> int:
    """Instructions (callgrind) of a process replaying the calls ``times`` times."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0",
               NUMBA_DISABLE_JIT=os.environ.get("NUMBA_DISABLE_JIT", "0"))
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/calls.pkl", "wb") as f:
            pickle.dump((calls, draws), f)
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
               sys.executable, "-c", CHILD, str(REPO), f"{tmp}/calls.pkl", scenario_name, str(times)]
        if shutil.which("setarch"):
            cmd = ["setarch", "-R"] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    m = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode or not m:
        raise SystemExit(f"callgrind failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", nargs="+", default=["nominal-terminal-descent", "hakuto-r-m1"])
    ap.add_argument("--repeat", type=int, default=5, help="replays timed; the best is shown")
    ap.add_argument("--instructions", action="store_true", help="also count instructions under callgrind")
    a = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name in a.scenario:
        calls, draws = record(name)
        make, terrain = sensor_and_terrain(name, draws)
        got, n_samples = replay(make, terrain, calls)
        if not same_bits([tuple(r) for r in got], [c[2] for c in calls]):
            raise SystemExit(f"{name}: the replayed readings differ from the flight's")
        probe = make()
        probe.update_from_vector(calls[0][0], calls[0][1], terrain)
        how = "compiled flat_sample_kernel" if probe.compiled_samples else "Python _sample"
        t_all = best(lambda: replay(make, terrain, calls), a.repeat)
        print(f"{name} ({type(terrain).__name__}, {how}): {n_samples} samples in {len(calls)} calls")
        print(f"  {t_all / n_samples * 1e6:8.2f} us per sample, {t_all / len(calls) * 1e6:6.2f} us per call "
              f"(wall clock, best of {a.repeat})")
        if a.instructions:
            # numba's disk cache is keyed by the CPU, and valgrind's is not this one: a first,
            # uncounted run compiles the kernels for it (later runs load them)
            instructions(name, calls[:50], draws, 1)
            i_all = instructions(name, calls, draws, 3) - instructions(name, calls, draws, 1)
            print(f"  {i_all / (2 * n_samples):8.0f} instructions per sample, {i_all / (2 * len(calls)):6.0f} "
                  f"per call (callgrind)")


def best(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


if __name__ == "__main__":
    main()
