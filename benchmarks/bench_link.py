"""What the link costs per 50 Hz cycle on the in-process (loopback) rig, with the flight code's
own cycle shown apart.

    python benchmarks/bench_link.py [--repeat 15] [--scenario nominal-terminal-descent]

One descent is flown on the loopback rig and every SENSORS it sent is kept (with the handshake's
CONFIG values). They are then replayed through a fresh flight code three ways, each best of
``--repeat``:

* ``FlightLink.exchange``: the whole harness side of the link (encode, link log, the flight
  code's byte input, its output, decode, TELEMETRY kept), with the SENSORS packed by Python's
  struct as with IMU faults (without them the closed loop packs them in C from the IMU reading
  and hands the COMMAND to the compiled plant cycle in the same call: ``bench_descent.py`` and
  ``bench_instructions.py`` measure that whole loop);
* ``flight code alone``: the same SENSORS frames, encoded beforehand, fed to
  ``fsw_loopback_feed`` and drained with ``fsw_loopback_drain``: the flight code's parser and
  GNC cycle plus the least Python that can drive it;
* the difference is what the link adds per cycle.

Times are CPU time of this process (``time.process_time``), which moves less than the wall clock
when the shared VM is busy (it still moves: caches are shared); compare A/B runs interleaved,
and see ``bench_instructions.py`` for a load-independent count of the whole loop.
"""
from __future__ import annotations

import argparse
import os
import time

from harness import protocol as p
from harness.link import FlightLink
from harness.rigs import open_rig
from harness.scenario_files import load_scenario
from harness.transports.loopback import LoopbackTransport


def record(scenario: str):
    """(config values, [(sensors, t_us), ...]) of one loopback descent of ``scenario``."""
    kept: dict = {"config": None, "cycles": []}
    configure, exchange, exchange_reading = FlightLink.configure, FlightLink.exchange, FlightLink.exchange_reading

    def rec_configure(self, values, *a, **k):
        kept["config"] = (values, k.get("required", frozenset()))
        return configure(self, values, *a, **k)

    def rec_exchange(self, sensors, t_us):
        kept["cycles"].append((sensors, t_us))
        return exchange(self, sensors, t_us)

    def rec_exchange_reading(self, lrf_range_m, lrf_sample_t_us, lrf_flags, t_us, row=-1):
        # the loop's own way (the SENSORS packed in C from the IMU reading), kept as the Sensors
        # FlightLink builds from the same values on every other rig
        kept["cycles"].append((self._reading_sensors(lrf_range_m, lrf_sample_t_us, lrf_flags), t_us))
        return exchange_reading(self, lrf_range_m, lrf_sample_t_us, lrf_flags, t_us, row)

    FlightLink.configure, FlightLink.exchange = rec_configure, rec_exchange
    FlightLink.exchange_reading = rec_exchange_reading
    try:
        with open_rig("loopback") as up:
            res = up.fly(load_scenario(scenario))
    finally:
        FlightLink.configure, FlightLink.exchange = configure, exchange
        FlightLink.exchange_reading = exchange_reading
    return kept["config"], kept["cycles"], res


def fresh_link(config) -> FlightLink:
    link = FlightLink(LoopbackTransport())
    link.wait_hello(1.0)
    link.configure(config[0], required=config[1])
    return link


def time_link(config, cycles) -> tuple[float, FlightLink]:
    """CPU seconds of ``FlightLink.exchange`` over ``cycles`` on a fresh flight code, and the link."""
    link = fresh_link(config)
    exchange = link.exchange
    t0 = time.process_time()
    for sensors, t_us in cycles:
        exchange(sensors, t_us)
    wall = time.process_time() - t0
    link.close()
    return wall, link


def time_flight_code(config, cycles) -> float:
    """CPU seconds of the same SENSORS frames, encoded beforehand, through the flight code alone."""
    link = fresh_link(config)
    tr = link.transport
    seq = link._seq
    frames = [p.encode_frame(s, (seq + i) & 0xFFFF, t) for i, (s, t) in enumerate(cycles)]
    feed, drain, lb, out = tr.lib.fsw_loopback_feed, tr.lib.fsw_loopback_drain, tr._lb, tr._out
    t0 = time.process_time()
    for f in frames:
        feed(lb, f, len(f))
        drain(lb, out, 16384)
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--scenario", default="nominal-terminal-descent")
    args = ap.parse_args()
    config, cycles, res = record(args.scenario)
    n = len(cycles)
    links, alone = [], []
    for _ in range(args.repeat):
        wall, link = time_link(config, cycles)
        links.append(wall / n * 1e6)
        alone.append(time_flight_code(config, cycles) / n * 1e6)
    st = link.stats
    assert st.exchanges == n and st.missed_cycles == 0 and link.decoder.counters.errors == 0, \
        (st, link.decoder.counters)
    assert len(link.telemetry_records()) == n, len(link.telemetry_records())
    print(f"{args.scenario}: {res.outcome}, {n} cycles replayed; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"best of {args.repeat}, CPU time: FlightLink.exchange {min(links):.2f} us/cycle; flight code alone "
          f"{min(alone):.2f} us/cycle; the link adds {min(links) - min(alone):.2f} us/cycle")


if __name__ == "__main__":
    main()
