"""CPU and bytes of a campaign run's stored blob (worker.pack_columns) on real M2 descents (issue 15).

    python benchmarks/bench_pack.py [--every 10] [--repeat 3]

Flies every ``--every``-th run of the M2 campaign's plan (harness/data/campaigns/
m2_lrf_acquisition.toml) in this process, the way a campaign worker does (build_scenario,
fly_on_rig on loopback), keeps each run's telemetry, then packs each run's blob as the worker
stores it (a failed run: its telemetry; a landed run: its 2 Hz trajectory, ``decimate`` then
``pack_columns`` in float16) ``--repeat`` times and unpacks it. Printed: CPU milliseconds
(time.process_time: this process's CPU, not the wall clock of a shared machine) per blob to
pack and to unpack, bytes per blob, for failed and landed runs, and their average over the
M2 mix as the full campaign flies it (486 crashes + 7 timeouts failed, 542 landed); every
blob is checked to unpack to the very columns packed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

M2 = Path(__file__).resolve().parent.parent / "harness" / "data" / "campaigns" / "m2_lrf_acquisition.toml"
M2_FAILED, M2_LANDED = 493, 542  # the full campaign's outcomes (docs/campaigns.md, "Size")


def fly_sample(every: int) -> list[tuple[bool, dict]]:
    """(landed, telemetry) of every ``every``-th run of the M2 plan, flown in this process."""
    from harness.campaign import load_spec
    from harness.campaign.core import _task
    from harness.campaign.sampling import plan
    from harness.campaign.spec import build_scenario
    from harness.campaign.worker import _base_scenario, fly_on_rig, warm_up

    spec = load_spec(M2)
    tasks = [_task(spec, {"run_id": t.run_id, "overrides": t.overrides, "seed": t.seed}, "bench")
             for t in plan(spec)][::every]
    warm_up()
    out = []
    for task in tasks:
        sc = build_scenario(task["scenario"], task["overrides"], task["seed"], task.get("origin", "<campaign>"),
                            allow_import=(), base=_base_scenario(task))
        res = fly_on_rig(sc, "loopback")
        out.append((res.landed, res.telemetry))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=int, default=10, help="fly every N-th run of the M2 plan (default 10: 104 runs)")
    ap.add_argument("--repeat", type=int, default=3, help="pack each blob this many times (default 3)")
    args = ap.parse_args()
    from harness.campaign.worker import COLUMNS_MAGIC, decimate, pack_columns, unpack_columns

    runs = fly_sample(args.every)
    clk = time.process_time
    stats = {"failed": [0.0, 0.0, 0, 0], "landed": [0.0, 0.0, 0, 0]}  # pack s, unpack s, bytes, blobs
    for landed, tm in runs:
        kind = "landed" if landed else "failed"
        for _ in range(args.repeat):
            t0 = clk()
            cols = decimate(tm) if landed else tm
            blob = pack_columns(cols, float_dtype="<f2") if landed else pack_columns(cols)
            t1 = clk()
            back = unpack_columns(blob)
            t2 = clk()
            s = stats[kind]
            s[0] += t1 - t0
            s[1] += t2 - t1
            s[2] += len(blob)
            s[3] += 1
        want = "<f2" if landed else "<f4"
        assert list(back) == list(cols) and all(back[k].tobytes() == np.asarray(v).astype(want).tobytes()
                                                for k, v in cols.items()), "a blob did not unpack to its columns"
    print(f"layout {COLUMNS_MAGIC.decode()}; {len(runs)} M2 runs flown (every {args.every}th), each blob packed "
          f"{args.repeat} times; load average {os.getloadavg()[0]:.2f}")
    for kind, (tp, tu, nbytes, n) in stats.items():
        print(f"  {kind:6s} ({n // args.repeat:3d} runs): pack {tp / n * 1e3:6.2f} ms, unpack {tu / n * 1e3:5.2f} ms "
              f"of CPU, {nbytes / n:8.0f} bytes per blob")
    per = {k: v[0] / max(v[3], 1) for k, v in stats.items()}
    print(f"  M2 mix ({M2_FAILED} failed, {M2_LANDED} landed): "
          f"{(per['failed'] * M2_FAILED + per['landed'] * M2_LANDED) / (M2_FAILED + M2_LANDED) * 1e3:.2f} ms of CPU "
          f"per run to pack (this sample has {sum(1 for ok, _ in runs if not ok)} failed runs, no 400 s timeout)")


if __name__ == "__main__":
    main()
