"""Lockstep cycles per second per rig, against the raw round-trip limit of the same link.

    python benchmarks/bench_rigs.py [--cycles 3000] [--repeats 5] [--rig host-pty --rig qemu-m4] [--breakdown]

For each rig, ``--repeats`` times, raw and harness interleaved (this machine's wall clock moves
with its load: the load average is printed before and after, and the medians are the figures):
* raw limit: the same flight code on the same pty or socket, driven by the least a program can
  do: ``write`` a pre-encoded SENSORS frame, ``poll`` + ``read`` the descriptor until the answer's
  COMMAND is in, counting frame delimiters (COMMAND and TELEMETRY each end in one; the TELEMETRY
  of cycle k may arrive during cycle k+1, as in the harness); no plant, no sensor models, no
  decoding, no pyserial, no harness transport. This is the most cycles per second the link and
  the flight code allow. (The in-process loopback has no descriptor: its raw loop feeds and
  drains the cffi pipe.)
* harness: a full lockstep terminal descent through the runner (plant, sensors, codec, link
  log, recording), the same number of cycles.
The ratio is the harness's efficiency against the link (goal, issue 15: >= 90 % on host-pty).
"""
from __future__ import annotations

import argparse
import os
import select
import statistics
import time

from harness import protocol as p
from harness.cycle import how_advance_runs
from harness.link import FlightLink
from harness.params import load_param_table
from harness.rigs import load_rig, open_rig
from harness.scenario_files import terminal_descent


def _descriptor(transport):
    """``(write, read)`` straight on the transport's file descriptor or socket, bypassing every
    layer of the harness; None for a transport without one (the in-process loopback)."""
    port = getattr(transport, "port", None)
    sock = getattr(port, "_socket", None)
    if sock is not None:
        fd = sock.fileno()
        write, read_fd = sock.send, sock.recv
    else:
        try:
            fd = port.fileno()
        except Exception:
            return None
        write, read_fd = (lambda data: os.write(fd, data)), (lambda n: os.read(fd, n))
    poller = select.poll()
    poller.register(fd, select.POLLIN)

    def read(_timeout_s: float) -> bytes:
        poller.poll(1000)
        try:
            return read_fd(65536)
        except BlockingIOError:
            return b""
    return write, read


def _period_median_s(stamps: list[float]) -> float:
    """The median time from one SENSORS write to the next: a cycle's cost without the
    pre-emptions of a shared machine (which the mean, cycles/s, includes)."""
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def raw_cycles_per_s(transport, cycles: int) -> tuple[float, float]:
    """(cycles per second, median cycle period in s) of the raw loop."""
    link = FlightLink(transport)
    link.wait_hello(15.0)
    table = load_param_table()
    link.configure([(table["TLM_DECIMATION"], 1.0), (table["MASS0"], 700.0)])
    sensors = p.Sensors((0.0, 0.0, 0.032), (0.0, 0.0, 0.0), 20000, 0.0, 0, p.SENSORS_IMU_VALID)
    frames = [p.encode_frame(sensors, 100 + k, (k + 1) * 20000) for k in range(cycles)]
    write, read = _descriptor(transport) or (transport.write, transport.read)
    seen = 0
    stamps = [0.0] * cycles
    clock = time.perf_counter
    t0 = clock()
    for k, frame in enumerate(frames):
        stamps[k] = clock()
        write(frame)
        while seen < 2 * k + 1:  # the COMMAND answering cycle k is delimiter 2k+1
            seen += read(1.0).count(0)
    return cycles / (clock() - t0), _period_median_s(stamps)


def harness_cycles_per_s(up, cycles: int) -> tuple[float, float, dict]:
    """(cycles per second, median cycle period in s, link statistics) of a lockstep descent."""
    sc = terminal_descent(t_max_s=cycles / 50.0, flight_params={"TLM_DECIMATION": 1.0})
    transport, write, clock = up.transport, up.transport.write, time.perf_counter
    stamps: list[float] = []
    stamp = stamps.append

    def stamped_write(data: bytes) -> None:  # the same one clock read per write as the raw loop
        stamp(clock())
        write(data)
    transport.write = stamped_write
    res = up.fly(sc)
    del transport.write
    n = res.link_stats["exchanges"]
    return n / res.link_stats["loop_wall_s"], _period_median_s(stamps[-n:]), res.link_stats


def cycle_breakdown(up, cycles: int) -> dict[str, float]:
    """Median time of each stretch of a lockstep cycle (s), from clock reads around the link's
    calls (wrappers: each adds a little): ``encode`` (``exchange_reading()``, or ``exchange()`` in a
    run with IMU faults, called to the transport write),
    ``write`` (the write call), ``to wait`` (after the write to the first read, the link's
    bookkeeping, overlapping the flight code), ``wait + read`` (the read that brought the
    answer), ``decode`` (answer read to exchange() returning), ``runner`` (exchange() returned
    to the next call: plant, sensors, record)."""
    import numpy as np

    from harness.link import FlightLink

    marks: list[tuple[str, float]] = []
    mark, clock = marks.append, time.perf_counter
    transport, write, read = up.transport, up.transport.write, up.transport.read
    exchange, exchange_reading = FlightLink.exchange, FlightLink.exchange_reading
    depth = [0]  # (one of them may call the other: the outer call is the cycle's)

    def timed(call):
        def timed_call(self, *args):
            depth[0] += 1
            if depth[0] == 1:
                mark(("ex0", clock()))
            try:
                return call(self, *args)
            finally:
                if depth[0] == 1:
                    mark(("ex1", clock()))
                depth[0] -= 1
        return timed_call

    def timed_write(data):
        mark(("w0", clock()))
        write(data)
        mark(("w1", clock()))

    def timed_read(timeout_s=0.0):
        t0 = clock()
        data = read(timeout_s)
        if data:
            marks.extend((("r0", t0), ("r1", clock())))
        return data

    FlightLink.exchange, FlightLink.exchange_reading = timed(exchange), timed(exchange_reading)
    transport.write, transport.read = timed_write, timed_read
    try:
        up.fly(terminal_descent(t_max_s=cycles / 50.0, flight_params={"TLM_DECIMATION": 1.0}))
    finally:
        FlightLink.exchange, FlightLink.exchange_reading = exchange, exchange_reading
        del transport.write, transport.read
    spans: dict[str, list[float]] = {k: [] for k in ("encode", "write", "to wait", "wait + read", "decode",
                                                      "runner")}
    cycle, last_end = {}, None
    for name, t in marks:
        if name == "ex0":
            if last_end is not None:
                spans["runner"].append(t - last_end)
            cycle = {"ex0": t}
        elif name == "ex1":
            c = cycle
            if all(k in c for k in ("w0", "w1", "r0", "r1")):  # one clean exchange: one write, one answer
                spans["encode"].append(c["w0"] - c["ex0"])
                spans["write"].append(c["w1"] - c["w0"])
                spans["to wait"].append(c["r0"] - c["w1"])
                spans["wait + read"].append(c["r1"] - c["r0"])
                spans["decode"].append(t - c["r1"])
            last_end, cycle = t, {}
        elif name not in cycle:  # the first write, read start and answer of the cycle
            cycle[name] = t
    return {k: float(np.median(v)) for k, v in spans.items() if v}


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved raw/harness pairs per rig")
    ap.add_argument("--rig", action="append", default=[])
    ap.add_argument("--breakdown", action="store_true",
                    help="also print where a harness cycle goes (medians of each stretch)")
    args = ap.parse_args()
    for name in args.rig or ["loopback", "host-pty", "qemu-m4"]:
        spec = load_rig(name)
        if spec.requirements():
            print(f"{name}: skipped, missing {spec.requirements()}")
            continue
        print(f"{name}: {args.cycles} cycles, {args.repeats} interleaved pairs; plant cycle {how_advance_runs()}; "
              f"{_load()}")
        raws, fulls, ratios, period_ratios = [], [], [], []
        for i in range(args.repeats):
            with open_rig(spec) as up:
                raw, raw_period = raw_cycles_per_s(up.transport, args.cycles)
            with open_rig(spec) as up:
                full, full_period, stats = harness_cycles_per_s(up, args.cycles)
            raws.append(raw)
            fulls.append(full)
            ratios.append(full / raw)
            period_ratios.append(raw_period / full_period)
            print(f"  pair {i + 1}: raw link limit {raw:7.0f} cycles/s   harness {full:7.0f} cycles/s   "
                  f"efficiency {100 * full / raw:5.1f} %   | median cycle: raw {raw_period * 1e6:5.1f} us, "
                  f"harness {full_period * 1e6:5.1f} us ({100 * raw_period / full_period:5.1f} %); harness "
                  f"round trip median {stats['round_trip_median_s'] * 1e6:.0f} us")
        print(f"{name:9s} median of {args.repeats}: raw link limit {statistics.median(raws):7.0f} cycles/s   "
              f"harness {statistics.median(fulls):7.0f} cycles/s   efficiency {100 * statistics.median(ratios):5.1f} %"
              f"   (on median cycle times {100 * statistics.median(period_ratios):5.1f} %); {_load()}")
        if args.breakdown:
            with open_rig(spec) as up:
                parts = cycle_breakdown(up, args.cycles)
            print(f"{name:9s} a harness cycle, medians: " + ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in parts.items())
                  + f"; {_load()}")


if __name__ == "__main__":
    main()
