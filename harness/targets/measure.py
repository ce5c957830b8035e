"""Link timings of the running targets and the command line ``python -m harness.targets {build,size,measure}``."""
from __future__ import annotations

import argparse
import json
import sys
import time

from harness.errors import FsilError
from harness.targets.host import build_host_program, start_host_program_pty
from harness.targets.process import stop_process
from harness.targets.qemu import FLASH_BUDGET, RAM_BUDGET, STACK_SIZE, build_qemu_firmware, check_budgets, \
    firmware_size, start_qemu


def measure_link(transport, cycles: int = 200, garbage: int = 2000) -> dict[str, float]:
    """Time a link to a flight code that has just booted: per-cycle round trip (SENSORS -> COMMAND +
    TELEMETRY) and per-byte costs. The HELLO and the configuration go through ``FlightLink``.
    Times in microseconds."""
    from harness import protocol as p
    from harness.link import FlightLink
    from harness.params import load_param_table

    link = FlightLink(transport)
    link.wait_hello(10.0)
    link.configure([(load_param_table()["MASS0"], 700.0)])
    dec = p.FrameDecoder()

    def until(types, timeout=10.0):
        want, stamps = list(types), []
        deadline = time.monotonic() + timeout
        first_byte = None
        while want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {want} within {timeout} s")
            data = transport.read(0.02)
            if data:
                now = time.perf_counter()
                first_byte = first_byte or now
                for f in dec.feed(data):
                    if want and f.msg_type == want[0]:
                        want.pop(0)
                        stamps.append(now)
        return first_byte, stamps

    rtts, tx_rates = [], []
    sensors = p.Sensors((0.0, 0.0, 0.162), (0.0, 0.0, 0.0), 100_000, 1500.0, 0,
                        p.SENSORS_IMU_VALID | p.SENSORS_LRF_VALID | p.SENSORS_LRF_NEW)
    frame_len = len(p.encode_frame(sensors, 0, 0))
    out_bytes = None
    for i in range(1, cycles + 1):
        t0 = time.perf_counter()
        link.send(sensors, 100_000 * i)
        first, (t_cmd, t_tlm) = until([p.MsgType.COMMAND, p.MsgType.TELEMETRY])
        rtts.append(t_tlm - t0)
        if out_bytes is None:
            cmd = p.encode_frame(p.Command(0.0, (0.0, 0.0, 0.0), 0, 0, 0), 0, 0)
            tlm = p.encode_frame(p.Telemetry((0.0,) * 3, (0.0,) * 3, (1.0, 0.0, 0.0, 0.0), 0.0, 0.0,
                                             0, 0, 0, 0, 0, 0, 0, 0, 0), 0, 0)
            out_bytes = len(cmd) + len(tlm)
        if t_tlm > first:
            tx_rates.append((t_tlm - first) / (out_bytes - 1))
    # Receive cost per byte: a run of garbage ahead of a SENSORS frame delays its answer.
    junk = bytes([0x55]) * 200 + b"\x00"
    n_junk = (garbage // len(junk)) * len(junk)
    t0 = time.perf_counter()
    transport.write(junk * (garbage // len(junk)))
    link.send(sensors, 100_000 * (cycles + 1))
    until([p.MsgType.COMMAND, p.MsgType.TELEMETRY])
    t_with = time.perf_counter() - t0
    rtts_sorted = sorted(rtts)
    median = rtts_sorted[len(rtts) // 2]
    return {
        "cycles": cycles,
        "bytes_in_per_cycle": frame_len,
        "bytes_out_per_cycle": out_bytes,
        "cycle_rtt_median_us": median * 1e6,
        "cycle_rtt_p95_us": rtts_sorted[int(0.95 * (len(rtts) - 1))] * 1e6,
        "cycle_rtt_max_us": rtts_sorted[-1] * 1e6,
        "rx_per_byte_us": max(0.0, (t_with - median) / n_junk * 1e6),
        "tx_per_byte_us": (sorted(tx_rates)[len(tx_rates) // 2] * 1e6) if tx_rates else float("nan"),
    }


def _measure(kind: str, cycles: int) -> dict[str, float]:
    from harness.transports.serial_port import SerialTransport

    if kind == "host":
        proc, path = start_host_program_pty()
        try:
            with SerialTransport(path) as transport:
                return measure_link(transport, cycles)
        finally:
            stop_process(proc)
    attach = kind.split("-", 1)[1]
    with start_qemu(None, attach, keep_open=True) as q:
        return measure_link(SerialTransport.from_port(q.serial, name=q.url), cycles)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.targets", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build both targets, print their paths")
    sub.add_parser("size", help="firmware sizes against the budgets")
    m = sub.add_parser("measure", help="round-trip times on host, qemu-socket, qemu-pty")
    m.add_argument("--cycles", type=int, default=200)
    m.add_argument("kinds", nargs="*", default=["host", "qemu-socket", "qemu-pty"])
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except FsilError as exc:
        print(f"{ap.prog}: error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.cmd == "build":
        print(build_host_program())
        print(build_qemu_firmware())
    elif args.cmd == "size":
        elf = build_qemu_firmware()
        s = firmware_size(elf)
        print(f"{elf}\n  flash {s['flash']} / {FLASH_BUDGET} (text {s['text']} + data {s['data']})\n"
              f"  RAM   {s['ram']} / {RAM_BUDGET} (data {s['data']} + bss {s['bss']}, stack {STACK_SIZE} incl.)")
        check_budgets(elf)
    else:
        for kind in args.kinds:
            print(kind, json.dumps({k: round(v, 1) for k, v in _measure(kind, args.cycles).items()}))
    return 0
