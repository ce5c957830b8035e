"""A hostile far end for the link tests: a real process on the pty the harness gives it. It does
the handshake like good flight code, then, from the SENSORS frame AFTER (default 25) on, misbehaves
as MODE says; before that it answers every SENSORS with a zero-throttle COMMAND and a TELEMETRY.

    hostile_fsw.py PORT MODE [AFTER]

MODE: nan-throttle / inf-torque / huge-throttle (COMMAND with a valid CRC and absurd values),
wrong-seq (COMMAND answering a SENSORS never sent), wrong-version (COMMAND with protocol version 9,
CRC valid), oversize (a packet longer than any message, CRC valid), short-command (COMMAND body cut
short, CRC valid), garbage (random bytes before each answer), flood (2,000 TELEMETRY before each
COMMAND), hello (a HELLO before each COMMAND), close (closes its end of the pty, stays alive),
exit0 (exits with status 0), stall (stops answering, alive, port open); during the handshake:
flood-before-hello (1 MB of garbage first), binary-name (a HELLO whose name is not ASCII),
ack-wrong-id (every CONFIG_ACK names another parameter).
"""
import os
import random
import struct
import sys
import termios
import time
import tty

from harness import protocol as p


HANDSHAKE_MODES = ("flood-before-hello", "binary-name", "ack-wrong-id")  # after the handshake: good flight code


def frame_of(packet_wo_crc: bytes) -> bytes:
    """A wire frame around any packet: the CRC made valid, COBS, delimiter."""
    return p.cobs_encode(packet_wo_crc + p.crc16(packet_wo_crc).to_bytes(2, "little")) + b"\x00"


def main() -> int:
    port, mode = sys.argv[1], sys.argv[2]
    after = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd, termios.TCSANOW)
    rng = random.Random(5)
    dec = p.FrameDecoder()
    seq, n_sensors = 0, 0

    def send(msg, t_us=0):
        nonlocal seq
        os.write(fd, p.encode_frame(msg, seq, t_us))
        seq = (seq + 1) & 0xFFFF

    def tlm():
        return p.Telemetry((0.0, 0.0, 0.0), (0.0,) * 3, (1.0, 0.0, 0.0, 0.0), 0.0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    if mode == "flood-before-hello":  # 1 MB of garbage (no delimiter for long runs) before its banner
        os.write(fd, bytes(rng.randrange(1, 256) for _ in range(1 << 20)))
    if mode == "binary-name":  # a HELLO whose name is not ASCII
        os.write(fd, frame_of(p.HEADER.pack(p.PROTOCOL_VERSION, p.MsgType.HELLO, 0, 0)
                              + p.Hello.LAYOUT.pack(p.PROTOCOL_VERSION, 0x5C41, 0, b"\xff\x1b[2J\x00\x9b")))
    else:
        send(p.Hello(p.PROTOCOL_VERSION, 0x5C41, "hostile"))
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            return 0
        if not data:
            return 0
        for f in dec.feed(data):
            if f.msg_type == p.MsgType.HELLO and mode != "binary-name":
                send(p.Hello(p.PROTOCOL_VERSION, 0x5C41, "hostile"))
            elif f.msg_type == p.MsgType.CONFIG and mode == "ack-wrong-id":
                send(p.ConfigAck((f.msg.param_id + 7) & 0xFFFF, p.ConfigStatus.ACCEPTED, f.msg.value), f.t_us)
            elif f.msg_type == p.MsgType.CONFIG:
                commit = f.msg.flags & p.CONFIG_COMMIT
                send(p.ConfigAck(f.msg.param_id, p.ConfigStatus.COMMITTED if commit else p.ConfigStatus.ACCEPTED,
                                 f.msg.value), f.t_us)
            elif f.msg_type == p.MsgType.SENSORS:
                n_sensors += 1
                good = p.Command(0.0, (0.0, 0.0, 0.0), f.seq, 0, 0)
                if n_sensors <= after or mode in HANDSHAKE_MODES:
                    send(good, f.t_us)
                    send(tlm(), f.t_us)
                    continue
                if mode == "nan-throttle":
                    send(p.Command(float("nan"), (0.0, 0.0, 0.0), f.seq, 0, p.COMMAND_ENGINE_ON), f.t_us)
                elif mode == "huge-throttle":
                    send(p.Command(3.0e38, (0.0, 0.0, 0.0), f.seq, 0, p.COMMAND_ENGINE_ON), f.t_us)
                elif mode == "inf-torque":
                    send(p.Command(0.5, (float("inf"), -3.0e38, float("nan")), f.seq, 0, p.COMMAND_ENGINE_ON), f.t_us)
                elif mode == "wrong-seq":
                    send(good._replace(sensors_seq=(f.seq + 1000) & 0xFFFF), f.t_us)
                elif mode == "wrong-version":
                    os.write(fd, frame_of(p.HEADER.pack(9, p.MsgType.COMMAND, seq, f.t_us) + good.pack()))
                elif mode == "oversize":
                    os.write(fd, frame_of(p.HEADER.pack(p.PROTOCOL_VERSION, p.MsgType.COMMAND, seq, f.t_us)
                                          + good.pack() + bytes(200)))
                elif mode == "short-command":
                    os.write(fd, frame_of(p.HEADER.pack(p.PROTOCOL_VERSION, p.MsgType.COMMAND, seq, f.t_us)
                                          + good.pack()[:5]))
                elif mode == "garbage":
                    os.write(fd, bytes(rng.randrange(256) for _ in range(300)) + b"\x00")
                    send(good, f.t_us)
                elif mode == "flood":
                    os.write(fd, p.encode_frame(tlm(), seq, f.t_us) * 2000)
                    send(good, f.t_us)
                elif mode == "hello":
                    send(p.Hello(p.PROTOCOL_VERSION, 0x5C41, "hostile again"))
                    send(good, f.t_us)
                elif mode == "close":
                    os.close(fd)
                    while True:
                        time.sleep(1)
                elif mode == "exit0":
                    return 0
                elif mode == "stall":
                    while True:
                        time.sleep(1)
                else:
                    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main())
