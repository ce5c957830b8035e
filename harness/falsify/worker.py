"""One falsification run in a worker process: build the scenario, fly it, judge the requirements.

Runs on the campaign executors (``LocalExecutor.run(tasks, timeout, fn=judge_one)``, Dask the
same way); the record is a plain dict that pickles cheaply (no telemetry).
"""
from __future__ import annotations

import math
import os
import socket
import time
import traceback


def judge_one(task: dict) -> dict:
    """Fly ``task`` (scenario ref, overrides, seed) and return its robustness per requirement.

    ``robustness``: a list of ``[name, value, t_worst_s, unit, formula]``; ``objective``: the
    smallest robustness (the run falsifies when it is < 0). Exceptions come back as an error
    record, never raised."""
    from harness.campaign.spec import build_scenario
    from harness.campaign.worker import failure_mode, fly_on_rig, scenario_json, warm_up
    from harness.requirements import robustness_all

    wall0 = time.perf_counter()
    out = {"run_id": task["run_id"], "worker": f"{socket.gethostname()}:{os.getpid()}", "status": "error",
           "outcome": "error"}
    try:
        rig = task.get("rig", "loopback")
        warm_up(rig)
        sc = build_scenario(task["scenario"], task["overrides"], task["seed"], task.get("origin", "<falsify>"))
        out["scenario_json"] = scenario_json(sc)
        res = fly_on_rig(sc, rig)
        rob = robustness_all(res, task["requirements"])
        out.update(status="done", outcome=res.outcome, failure_mode=failure_mode(res), verdict=res.verdict(),
                   robustness=[[r.requirement, r.value, r.t_worst_s, r.unit, r.formula] for r in rob],
                   objective=min(r.value for r in rob), error=res.error or "",
                   v_vertical=res.touchdown.v_vertical if res.touchdown else math.nan)
    except Exception as exc:  # noqa: BLE001 - a bad run is data, the search goes on
        out.update(failure_mode=f"error: {type(exc).__name__}",
                   error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")
    out["wall_s"] = time.perf_counter() - wall0
    return out
