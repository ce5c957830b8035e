"""Falsification: drive the search parameters toward the smallest robustness until a requirement breaks.

The search works in the unit cube [0, 1]^d (each parameter mapped linearly or logarithmically
onto its interval). The objective of one descent is the smallest robustness over the spec's
requirements (each in its own unit); the requirement is falsified by the first descent whose
objective is < 0. Optimisers (all from maintained libraries except the baseline):

* ``cma``             CMA-ES (``cma``), ask/tell in generations, restarts with a doubled population
                      (IPOP) when it converges without a violation;
* ``de``              differential evolution (``scipy.optimize.differential_evolution``), one
                      generation flown in parallel (``workers=`` map, deferred updating);
* ``dual_annealing``  generalised simulated annealing with local search (``scipy.optimize``),
                      one descent at a time;
* ``tpe``             Tree-structured Parzen Estimator (``optuna``), ask/tell, constant liar for batches;
* ``random``          uniform random sampling: the baseline every optimiser must beat.

Every descent is recorded (``harness.falsify.store``) before the optimiser hears of it; the same
command resumes by replaying the stored descents in order (the optimisers are seeded, so they
ask for the same points again) and flies only the rest.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.falsify.spec import FalsifySpec, load_falsify_spec
from harness.falsify.store import FalsifyStore
from harness.safetext import inside, safe_component

# Objective given to the optimisers for +-inf robustness and for descents that ended in a harness
# error (recorded as errors; they never count as a violation).
_CLAMP = 1e6


class _Stop(Exception):
    """The search is over: a violation was found or the budget is spent."""


@dataclass
class Evaluation:
    idx: int
    u: list[float]
    params: dict
    seed: int
    status: str
    outcome: str
    objective: float
    robustness: list          # [[name, value, t_worst_s, unit, formula], ...]
    failure_mode: str = ""
    error: str = ""
    replayed: bool = False

    @property
    def violated(self) -> bool:
        return self.status == "done" and self.objective < 0.0

    def lines(self) -> list[str]:
        out = []
        for name, value, t_worst, unit, formula in self.robustness:
            at = f", worst at t = {t_worst:.2f} s" if t_worst is not None else ""
            out.append(f"{name}: robustness {value:+.4g} {unit}{at}  [{formula}]")
        return out


@dataclass
class FalsifyOutcome:
    spec: FalsifySpec
    db: Path
    key: str
    optimizer: str
    evaluations: list[Evaluation] = field(default_factory=list)
    falsified: Evaluation | None = None
    scenario_file: Path | None = None
    wall_s: float = 0.0

    @property
    def descents(self) -> int:
        return len(self.evaluations)

    @property
    def flown(self) -> int:
        return sum(not e.replayed for e in self.evaluations)

    @property
    def descents_to_violation(self) -> int | None:
        """Descents asked for up to and including the first violating one (None: not falsified)."""
        return None if self.falsified is None else self.falsified.idx + 1

    @property
    def best(self) -> Evaluation | None:
        done = [e for e in self.evaluations if e.status == "done"]
        return min(done, key=lambda e: e.objective) if done else None

    def summary(self) -> str:
        s = self.spec
        lines = []
        if self.falsified is not None:
            e = self.falsified
            lines.append(f"FALSIFIED after {e.idx + 1} descents ({self.optimizer}, seed {s.seed}): "
                         f"descent {e.idx} ends {e.outcome}")
            lines += ["  " + f"{p} = {v!r}" for p, v in e.params.items()]
            lines.append(f"  scenario seed {e.seed}")
            lines += ["  " + x for x in e.lines()]
            if self.scenario_file:
                lines.append(f"  falsifying case: {self.scenario_file}  (fly it: fsil run {self.scenario_file})")
        else:
            b = self.best
            lines.append(f"not falsified within {self.descents} descents ({self.optimizer}, seed {s.seed}); "
                         f"this is no proof that the requirements hold")
            if b is not None:
                lines.append(f"  smallest robustness {b.objective:+.4g} at descent {b.idx}: "
                             + ", ".join(f"{p} = {v:.6g}" for p, v in b.params.items()))
        errors = sum(e.status != "done" for e in self.evaluations)
        if errors:
            lines.append(f"  {errors} descents ended in a harness error (see the database {self.db})")
        return "\n".join(lines)


class InProcessExecutor:
    """Flies the tasks one after the other in this process (tests, debugging, a profiler); the
    same interface as the campaign executors (``run(tasks, timeout_s, fn)``, ``close``,
    ``describe``). No wall timeout: a hung flight code hangs the search."""

    name = "in-process"
    workers = 1

    def describe(self) -> str:
        return "this process, one descent at a time"

    def run(self, tasks, timeout_s: float, fn=None):
        from harness.campaign.worker import fly_one

        for t in tasks:
            yield (fn or fly_one)(t)

    def close(self, cancel: bool = False) -> None:
        pass


def run_seed(spec: FalsifySpec, idx: int) -> int:
    """The scenario seed of descent ``idx``: the spec's fixed ``run_seed``, or one per descent."""
    if spec.run_seed is not None:
        return int(spec.run_seed)
    return int(np.random.SeedSequence(spec.seed, spawn_key=(2, idx)).generate_state(1)[0])


def values_at(spec: FalsifySpec, u) -> dict:
    return {p.path: p.value(x) for p, x in zip(spec.parameters, u)}


class _Evaluator:
    """Flies batches of points (unit cube), records them, and stops the search when it is over."""

    def __init__(self, spec, store, key, executor, budget, bar, stop_on_violation=True):
        self.spec, self.store, self.key, self.ex, self.budget, self.bar = spec, store, key, executor, budget, bar
        self.stop_on_violation = stop_on_violation
        self.evals: list[Evaluation] = []
        self.falsified: Evaluation | None = None
        self._worst = 0.0

    def batch(self, U) -> list[float]:
        from harness.falsify.worker import judge_one

        if (self.falsified is not None and self.stop_on_violation) or len(self.evals) >= self.budget:
            raise _Stop
        U = [np.clip(np.asarray(u, dtype=float)[: len(self.spec.parameters)], 0.0, 1.0)
             for u in U][: self.budget - len(self.evals)]
        new, tasks = [], []
        for u in U:
            idx = len(self.evals) + len(new)
            uu = [float(x) for x in u]
            params, seed = values_at(self.spec, uu), run_seed(self.spec, idx)
            st = self.store.stored(self.key, idx)
            if st is not None:
                if st["u"] != uu:
                    raise ConfigError(f"{self.store.path}: cannot resume search {self.key!r}: descent {idx} was "
                                      f"recorded at {st['u']}, the optimiser now asks for {uu} (another version of "
                                      f"the optimiser library?); use a new database")
                new.append(Evaluation(idx, uu, params, seed, st["status"], st["outcome"] or "error", st["objective"],
                                      st["robustness"], st["failure_mode"] or "", st["error"] or "", replayed=True))
            else:
                new.append(Evaluation(idx, uu, params, seed, "pending", "", math.nan, []))
                tasks.append({"run_id": idx, "scenario": self.spec.scenario,
                              "overrides": self.spec.overrides_for(params), "seed": seed,
                              "requirements": list(self.spec.requirements), "rig": self.spec.rig,
                              "origin": f"{self.spec.source} descent {idx}"})
        if tasks:
            by_idx = {e.idx: e for e in new}
            for rec in self.ex.run(tasks, self.spec.run_timeout_s, fn=judge_one):
                e = by_idx[rec["run_id"]]
                self.store.record(self.key, e.idx, e.u, e.params, e.seed, rec)
                e.status, e.outcome = rec.get("status", "error"), rec.get("outcome", "error")
                e.objective = float(rec.get("objective", math.nan)) if rec.get("status") == "done" else math.nan
                e.robustness = rec.get("robustness", [])
                e.failure_mode, e.error = rec.get("failure_mode", ""), rec.get("error", "")
                if self.bar is not None:
                    self.bar.update(1)
        elif self.bar is not None:
            self.bar.update(len(new))
        self.evals += new
        for e in new:
            if e.status == "done" and math.isfinite(e.objective):
                self._worst = max(self._worst, e.objective)
        if self.falsified is None:
            hits = [e for e in new if e.violated]
            if hits:
                self.falsified = hits[0]
        if self.bar is not None:
            best = min((e.objective for e in self.evals if e.status == "done"), default=math.nan)
            self.bar.set_postfix_str(f"smallest robustness {best:+.4g}", refresh=False)
        out = [self._value(e) for e in new]
        if (self.falsified is not None and self.stop_on_violation) or len(self.evals) >= self.budget:
            raise _Stop
        return out

    def _value(self, e: Evaluation) -> float:
        if e.status != "done" or math.isnan(e.objective):
            return min(_CLAMP, self._worst + 1.0)   # an error teaches nothing: look elsewhere
        return float(min(_CLAMP, max(-_CLAMP, e.objective)))


def _batch_size(spec: FalsifySpec, workers: int) -> int:
    if spec.batch:
        return spec.batch
    d = len(spec.parameters)
    return {"cma": 4 + int(3 * math.log(max(d, 2))), "de": max(5, 5 * d), "dual_annealing": 1,
            "tpe": max(1, workers), "random": max(1, workers)}[spec.optimizer]


def _search(spec: FalsifySpec, ev: _Evaluator, workers: int) -> None:
    d = len(spec.parameters)
    b = _batch_size(spec, workers)
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(3,)))
    opt = spec.optimizer
    if opt == "random":
        while True:
            ev.batch(list(rng.random((b, d))))
    elif opt == "cma":
        import cma

        # cma 4.x cannot run a 1-D problem with bounds: pad with a coordinate the objective ignores
        dim = max(d, 2)
        pop = b
        restart = 0
        while True:
            es = cma.CMAEvolutionStrategy(list(rng.random(dim)) if restart else [0.5] * dim, 0.3,
                                          {"bounds": [0.0, 1.0], "seed": int(spec.seed) * 1000 + restart + 1,
                                           "popsize": pop, "verbose": -9})
            while not es.stop():
                X = es.ask()
                es.tell(X, ev.batch(X))
            restart += 1
            pop *= 2
    elif opt == "tpe":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=int(spec.seed), constant_liar=b > 1, multivariate=d > 1,
                                             n_startup_trials=max(5, 2 * d))
        study = optuna.create_study(direction="minimize", sampler=sampler)
        dists = {f"u{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(d)}
        while True:
            trials = [study.ask(dists) for _ in range(b)]
            U = [[t.params[f"u{i}"] for i in range(d)] for t in trials]
            try:
                vals = ev.batch(U)
            except _Stop:
                raise
            for t, v in zip(trials, vals):
                study.tell(t, v)
    elif opt == "de":
        from scipy.optimize import differential_evolution

        restart = 0
        while True:
            differential_evolution(lambda u: math.nan, [(0.0, 1.0)] * d, popsize=max(1, math.ceil(b / d)),
                                   maxiter=10**6, tol=0.0, atol=0.0, polish=False, updating="deferred",
                                   init="latinhypercube", seed=int(spec.seed) * 1000 + restart,
                                   workers=lambda _f, xs: ev.batch(list(xs)))
            restart += 1
    elif opt == "dual_annealing":
        from scipy.optimize import dual_annealing

        restart = 0
        while True:
            dual_annealing(lambda u: ev.batch([u])[0], [(0.0, 1.0)] * d, maxfun=10**7,
                           seed=int(spec.seed) * 1000 + restart)
            restart += 1
    else:  # pragma: no cover - the spec loader refuses other names
        raise ConfigError(f"unknown optimizer {opt!r}")


def falsify(spec: FalsifySpec | str | Path, db: str | Path | None = None, *, optimizer: str | None = None,
            seed: int | None = None, budget: int | None = None, workers: int | None = None,
            scheduler: str | None = None, executor=None, progress: bool = True, out: str | Path | None = None,
            write_case: bool = True, stream=None) -> FalsifyOutcome:
    """Search for a descent that violates the spec's requirements; stop at the first violation
    or after ``budget`` descents. ``optimizer``, ``seed``, ``budget`` override the spec's.

    Each (optimizer, seed) is its own search in the database (key ``falsify:OPT:SEED``); calling
    again with the same ones resumes it. When falsified and ``write_case``, the falsifying descent
    is written as a scenario file (``out``, default next to the database)."""
    import dataclasses

    from harness.campaign.executors import make_executor

    stream = stream or sys.stderr
    if not isinstance(spec, FalsifySpec):
        spec = load_falsify_spec(spec)
    if not spec.parameters:
        raise ConfigError(f"{spec.source}: [parameters] is empty: nothing to search")
    changes = {k: v for k, v in (("optimizer", optimizer), ("seed", seed), ("budget", budget)) if v is not None}
    if "optimizer" in changes and changes["optimizer"] not in ("cma", "de", "dual_annealing", "tpe", "random"):
        raise ConfigError(f"optimizer {optimizer!r}; allowed: cma, de, dual_annealing, tpe, random")
    spec = dataclasses.replace(spec, **changes)
    # the name comes from the spec file: a safe file name inside fsil-falsify (``../../x`` -> ``_.._x``)
    db = Path(db) if db else inside(Path("fsil-falsify"), f"{spec.name}.sqlite")
    from harness.campaign.core import workers_for_rig

    workers = workers_for_rig(spec, workers, scheduler)
    key = f"falsify:{spec.optimizer}:{spec.seed}"
    t0 = time.perf_counter()
    result = FalsifyOutcome(spec, db, key, spec.optimizer)
    with FalsifyStore(db) as store:
        have = store.open_search(key, spec, "falsify")
        ex = executor or make_executor(workers=workers, scheduler=scheduler, rig=spec.rig)
        nworkers = getattr(ex, "workers", 1) or 1
        print(f"falsify {spec.name}: {len(spec.parameters)} parameters, requirements {', '.join(spec.requirements)}; "
              f"{spec.optimizer}, seed {spec.seed}, budget {spec.budget} descents; {have} already in {db}; "
              f"flying on {ex.describe()}", file=stream)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=spec.budget, unit="descent", file=stream, dynamic_ncols=True, desc=spec.optimizer)
        ev = _Evaluator(spec, store, key, ex, spec.budget, bar)
        try:
            _search(spec, ev, nworkers)
        except _Stop:
            pass
        except BaseException:
            if executor is None:
                ex.close(cancel=True)
            if bar is not None:
                bar.close()
            print(f"\nfalsify interrupted; the descents flown are in {db}: run the same command to resume",
                  file=stream)
            raise
        if executor is None:
            ex.close()
        if bar is not None:
            bar.close()
        result.evaluations, result.falsified = ev.evals, ev.falsified
        result.wall_s = time.perf_counter() - t0
        if result.falsified is not None and write_case:
            case = Path(out) if out else db.parent / safe_component(f"{spec.name}-falsified.toml")
            result.scenario_file = write_falsified(spec, result.falsified, case)
        store.finish(key, {"falsified": result.falsified is not None,
                           "descents_to_violation": result.descents_to_violation,
                           "descents": result.descents,
                           "best_objective": result.best.objective if result.best else None,
                           "scenario_file": str(result.scenario_file) if result.scenario_file else None})
    return result


def write_falsified(spec: FalsifySpec, e: Evaluation, path: Path) -> Path:
    """The falsifying descent as a scenario file that flies again exactly."""
    from harness.campaign.spec import build_scenario
    from harness.falsify.scenario_out import write_scenario

    sc = build_scenario(spec.scenario, spec.overrides_for(e.params), e.seed, f"{spec.source} descent {e.idx}")
    head = [f"Falsifying case found by fsil falsify {spec.source} ({spec.optimizer}, seed {spec.seed}),",
            f"descent {e.idx}: {e.outcome}. Base scenario {spec.scenario!r} with:"]
    head += [f"  {k} = {v!r}" for k, v in spec.overrides_for(e.params).items()]
    head += [f"  scenario seed {e.seed}", "Robustness when found (negative: violated):"]
    head += ["  " + x for x in e.lines()]
    head += ["", f"Fly it again:  fsil run {path}",
             f"Check it:      fsil falsify {spec.source} --check {path}"]
    names = ", ".join(r[0] for r in e.robustness if r[1] < 0)
    return write_scenario(sc, path, name=f"{spec.name}-falsified",
                          description=f"falsifies {names} (fsil falsify {Path(spec.source).name}, descent {e.idx})",
                          header="\n".join(head))


def check_case(spec: FalsifySpec | str | Path, scenario_file: str | Path):
    """Fly a scenario file once on the spec's rig and judge the spec's requirements on it:
    ``(FlightResult, [Robustness, ...])``."""
    from harness.campaign.worker import fly_on_rig, warm_up
    from harness.requirements import robustness_all
    from harness.scenario_files import load_scenario

    if not isinstance(spec, FalsifySpec):
        spec = load_falsify_spec(spec)
    warm_up(spec.rig)
    sc = load_scenario(str(scenario_file))
    res = fly_on_rig(sc, spec.rig)
    return res, robustness_all(res, spec.requirements)
