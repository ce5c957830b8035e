"""Seeded nominal terminal descents on a noisy link: bit errors on both directions
(``link_bit_errors``, docs/faults.md) from the start, each seed its own error pattern.

    PYTHONPATH=. python benchmarks/bench_ber.py --ber 1e-4 --seeds 20
    PYTHONPATH=. python benchmarks/bench_ber.py --ber 1e-3 --seeds 20
    PYTHONPATH=. python benchmarks/bench_ber.py --ber 1e-4 --seeds 20 --unchecked   # CHK_ENABLE 0

Prints one line per seed (outcome, touchdown speeds, SENSORS lost/refused as the flight code
counted them) and the number landed. ``--unchecked`` flies the flight code with its second line
of defence off (no accumulators used: every lost SENSORS frame loses its IMU increment).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import faults as F
from harness import protocol as p
from harness.link import replay_link_log
from harness.rigs import open_rig
from harness.scenario_files import terminal_descent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ber", type=float, default=1e-4, help="bit error rate, each direction (1/bit)")
    ap.add_argument("--seeds", type=int, default=20, help="seeds 0 .. N-1")
    ap.add_argument("--unchecked", action="store_true", help="fly with CHK_ENABLE = 0")
    args = ap.parse_args()
    landed = 0
    with open_rig("loopback") as rig, tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            sc = terminal_descent(name=f"ber-{args.ber:g}-seed{seed}", seed=seed,
                                  faults=(F.LinkBitErrors(ber=args.ber, direction="both"),),
                                  flight_params={"CHK_ENABLE": 0.0} if args.unchecked else {})
            res = rig.fly(sc, artifacts=Path(tmp) / sc.name)
            landed += res.outcome == "landed"
            tlm = [f.msg for f in replay_link_log(Path(tmp) / sc.name / "link.log")["F>H"]
                   if f.msg_type == p.MsgType.TELEMETRY]
            fc = tlm[-1]._asdict() if tlm else {}
            print(f"seed {seed:2d}: {res.outcome:13s} lost SENSORS {fc.get('sensors_gaps', 0):3d} "
                  f"refused {fc.get('sensors_rejected', 0):2d} fault_flags 0x{fc.get('fault_flags', 0):05x} "
                  f"missed cycles {res.link_stats.get('missed_cycles', 0):.0f} "
                  f"v_down {res.touchdown.v_vertical if res.touchdown else float('nan'):.2f} m/s", flush=True)
    print(f"ber {args.ber:g} both directions{' (unchecked)' if args.unchecked else ''}: "
          f"{landed} of {args.seeds} landed")


if __name__ == "__main__":
    main()
