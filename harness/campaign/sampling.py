"""The run plan: every run's grid point, dispersed values and seed, derived from the campaign seed.

Run ``i`` (0-based, grid-point major) gets

* scenario seed ``SeedSequence(seed, spawn_key=(0, i)).generate_state(1)[0]`` (sensor noise, faults);
* dispersed values from a design of ``runs_per_point`` points in [0, 1)^d, one design per grid
  point, seeded by ``SeedSequence(seed, spawn_key=(1, point))``: plain random (numpy), Latin
  hypercube or scrambled Sobol (scipy.stats.qmc), mapped through each distribution's inverse CDF.

The plan depends only on the spec, so it is the same on every machine and every resume; the
store keeps it anyway, so a run can be flown again from the database alone.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from harness.campaign.spec import CampaignSpec


@dataclass(frozen=True)
class PlannedRun:
    run_id: int
    point_index: int
    point: dict          # axis name -> label
    overrides: dict      # dotted path -> value: fixed [scenario] values, then sweep values, then dispersed
    sampled: dict        # dotted path -> dispersed value (also in overrides)
    seed: int


def run_seed(campaign_seed: int, run_id: int) -> int:
    return int(np.random.SeedSequence(campaign_seed, spawn_key=(0, run_id)).generate_state(1)[0])


# numpy's SeedSequence hash (numpy/random/bit_generator.pyx), for many spawn keys at once
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _POOL = 0xCA01F9DD, 0x4973F715, 4


def run_seeds(campaign_seed: int, n: int) -> np.ndarray:
    """``run_seed(campaign_seed, i)`` for i in 0..n-1 (uint32), the whole plan at once: numpy's
    SeedSequence pool mixing done on arrays (100,000 seeds in milliseconds instead of seconds).
    Checked against SeedSequence on the first and last runs of every plan."""
    u32 = np.uint32
    words = []
    x = int(campaign_seed)
    while True:
        words.append(x & 0xFFFFFFFF)
        x >>= 32
        if not x:
            break
    ids = np.arange(n, dtype=np.uint64)
    if n and int(ids[-1]) > 0xFFFFFFFF:
        raise ValueError("run_seeds: more than 2**32 runs")
    run = words + [0] * max(0, _POOL - len(words))
    # assembled entropy: campaign seed words (padded to the pool), then the spawn key (0, i);
    # i = 0 coerces to the single word 0 like every other i < 2**32
    cols = [np.full(n, w, dtype=u32) for w in run] + [np.zeros(n, u32), ids.astype(u32)]
    with np.errstate(over="ignore"):
        hc = [u32(_INIT_A)]

        def hashmix(v):
            v = v ^ hc[0]
            hc[0] = u32(hc[0] * u32(_MULT_A))
            v = v * hc[0]
            return v ^ (v >> u32(16))

        def mix(x_, y_):
            r = x_ * u32(_MIX_L) - y_ * u32(_MIX_R)
            return r ^ (r >> u32(16))

        mixer = [hashmix(cols[i]) for i in range(_POOL)]
        for s in range(_POOL):
            for d in range(_POOL):
                if s != d:
                    mixer[d] = mix(mixer[d], hashmix(mixer[s]))
        for s in range(_POOL, len(cols)):
            for d in range(_POOL):
                mixer[d] = mix(mixer[d], hashmix(cols[s]))
        v = mixer[0] ^ u32(_INIT_B)
        v = v * u32(u32(_INIT_B) * u32(_MULT_B))
        out = v ^ (v >> u32(16))
    for i in {0, 1, n - 2, n - 1} & set(range(n)):
        if int(out[i]) != run_seed(campaign_seed, i):  # numpy changed its hash: the plan must not change silently
            raise RuntimeError(f"run_seeds disagrees with numpy.random.SeedSequence at run {i}")
    return out


def unit_design(sampling: str, n: int, d: int, seed_seq: np.random.SeedSequence) -> np.ndarray:
    """``n`` points in [0, 1)^d."""
    if d == 0:
        return np.zeros((n, 0))
    rng = np.random.default_rng(seed_seq)
    if sampling == "random":
        return rng.random((n, d))
    from scipy.stats import qmc

    if sampling == "lhs":
        return qmc.LatinHypercube(d=d, seed=rng).random(n)
    if sampling == "sobol":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # n not a power of 2: balance is lost, the points stay valid
            return qmc.Sobol(d=d, scramble=True, seed=rng).random(n)
    raise ValueError(sampling)


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def plan(spec: CampaignSpec) -> list[PlannedRun]:
    runs: list[PlannedRun] = []
    n = spec.runs_per_point
    seeds = run_seeds(spec.seed, spec.n_runs)
    for p, idx in enumerate(spec.grid()):
        u = unit_design(spec.sampling, n, len(spec.dispersions),
                        np.random.SeedSequence(spec.seed, spawn_key=(1, p)))
        columns = [d.ppf(u[:, j]) for j, d in enumerate(spec.dispersions)]
        point = {a.name: a.labels[k] for a, k in zip(spec.axes, idx)}
        fixed = dict(spec.overrides)
        for a, k in zip(spec.axes, idx):
            fixed[a.path] = a.values[k]
        values = [np.asarray(c).tolist() for c in columns]  # Python floats, as _plain gives
        paths = [d.path for d in spec.dispersions]
        for r in range(n):
            rid = p * n + r
            sampled = dict(zip(paths, (v[r] for v in values)))
            runs.append(PlannedRun(rid, p, point, {**fixed, **sampled}, sampled, int(seeds[rid])))
    return runs
