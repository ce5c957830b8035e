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
    for p, idx in enumerate(spec.grid()):
        u = unit_design(spec.sampling, n, len(spec.dispersions),
                        np.random.SeedSequence(spec.seed, spawn_key=(1, p)))
        columns = [d.ppf(u[:, j]) for j, d in enumerate(spec.dispersions)]
        point = {a.name: a.labels[k] for a, k in zip(spec.axes, idx)}
        fixed = dict(spec.overrides)
        for a, k in zip(spec.axes, idx):
            fixed[a.path] = a.values[k]
        for r in range(n):
            rid = p * n + r
            sampled = {d.path: _plain(columns[j][r]) for j, d in enumerate(spec.dispersions)}
            runs.append(PlannedRun(rid, p, point, {**fixed, **sampled}, sampled, run_seed(spec.seed, rid)))
    return runs
