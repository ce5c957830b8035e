"""Lockstep cycles per second per rig, against the raw round-trip limit of the same link.

    python benchmarks/bench_rigs.py [--cycles 1500] [--rig host-pty --rig qemu-m4]

For each rig, in one run:
* raw limit: the same flight code on the same pty or socket, driven by a minimal loop that
  writes pre-encoded SENSORS frames and waits for each answer's COMMAND by counting frame
  delimiters (COMMAND and TELEMETRY each end in one; the TELEMETRY of cycle k may arrive
  during cycle k+1, as in the harness): no plant, no sensor models, no decoding. This is the
  most cycles per second the link and the flight code allow.
* harness: a full lockstep terminal descent through the runner (plant, sensors, codec, link
  log, recording), the same number of cycles.
The ratio is the harness's efficiency against the link (goal: >= 70 %).
"""
from __future__ import annotations

import argparse
import time

from harness import protocol as p
from harness.link import FlightLink
from harness.params import load_param_table
from harness.rigs import load_rig, open_rig
from harness.scenario_files import terminal_descent


def raw_cycles_per_s(transport, cycles: int) -> float:
    link = FlightLink(transport)
    link.wait_hello(15.0)
    table = load_param_table()
    link.configure([(table["TLM_DECIMATION"], 1.0), (table["MASS0"], 700.0)])
    sensors = p.Sensors((0.0, 0.0, 0.032), (0.0, 0.0, 0.0), 20000, 0.0, 0, p.SENSORS_IMU_VALID)
    frames = [p.encode_frame(sensors, 100 + k, (k + 1) * 20000) for k in range(cycles)]
    read = transport.read
    seen = 0
    t0 = time.perf_counter()
    for k, frame in enumerate(frames):
        transport.write(frame)
        while seen < 2 * k + 1:  # the COMMAND answering cycle k is delimiter 2k+1
            seen += read(1.0).count(0)
    return cycles / (time.perf_counter() - t0)


def harness_cycles_per_s(up, cycles: int) -> tuple[float, dict]:
    sc = terminal_descent(t_max_s=cycles / 50.0, flight_params={"TLM_DECIMATION": 1.0})
    res = up.fly(sc)
    return res.link_stats["exchanges"] / res.link_stats["loop_wall_s"], res.link_stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=1500)
    ap.add_argument("--rig", action="append", default=[])
    args = ap.parse_args()
    for name in args.rig or ["loopback", "host-pty", "qemu-m4"]:
        spec = load_rig(name)
        if spec.requirements():
            print(f"{name}: skipped, missing {spec.requirements()}")
            continue
        with open_rig(spec) as up:
            raw = raw_cycles_per_s(up.transport, args.cycles)
        with open_rig(spec) as up:
            full, stats = harness_cycles_per_s(up, args.cycles)
        print(f"{name:9s} raw link limit {raw:8.0f} cycles/s   harness {full:8.0f} cycles/s   "
              f"efficiency {100 * full / raw:5.1f} %   round trip median "
              f"{stats['round_trip_median_s'] * 1e3:.3f} ms, p99 {stats['round_trip_p99_s'] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
