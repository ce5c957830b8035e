"""A scripted far end for the program-rig tests: a real process on the pty (or TCP port) the
harness gives it, speaking the link protocol through harness.protocol, misbehaving on request.

    scripted_fsw.py PORT MODE        PORT: pty path, or tcp:N to listen on 127.0.0.1:N

MODE: serve (answer everything; throttle 0), exit3 (write stderr lines, exit 3 at the first CONFIG),
exit-early (exit 3 before opening the port),
segv (SIGSEGV itself on the first SENSORS), stop (SIGSTOP itself on the first SENSORS),
deaf-to-term (serve, but ignore SIGTERM), mute (never send a frame),
tlm-v1 (serve, plus a TELEMETRY after each COMMAND with the 76-byte body of protocol v1),
crc-be (serve, but every frame's CRC is sent big-endian).
"""
import os
import signal
import socket
import sys
import termios
import time
import tty

from harness import protocol as p


def main() -> int:
    port, mode = sys.argv[1], sys.argv[2]
    print(f"scripted far end, mode {mode}, port {port}", flush=True)  # stdout, captured by the rig
    if mode == "exit-early":
        sys.stderr.write("fatal: no licence file\n")
        return 3
    if mode == "deaf-to-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: (sys.stderr.write("got SIGTERM, bye\n"), sys.exit(0)))
    if port.startswith("tcp:"):
        srv = socket.create_server(("127.0.0.1", int(port[4:])))
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        read, write = (lambda: conn.recv(4096)), conn.sendall
    else:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd, termios.TCSANOW)
        read, write = (lambda: os.read(fd, 4096)), (lambda b: os.write(fd, b))
    if mode == "mute":  # opens its port, says something on stderr, never speaks the protocol
        sys.stderr.write("waiting for the GNSS fix\n")
        sys.stderr.flush()
        while True:
            time.sleep(1)
    dec = p.FrameDecoder()
    seq = 0

    def send(msg, t_us=0, body_len=None):
        nonlocal seq
        data = p.encode_packet(msg, seq, t_us)[:-2]
        if body_len is not None:   # a layout of another size (e.g. a v1 TELEMETRY), CRC still right
            data = data[:p.HEADER.size + body_len]
        crc = p.crc16(data).to_bytes(2, "big" if mode == "crc-be" else "little")
        write(b"\x00" + p.cobs_encode(data + crc) + p.DELIMITER)
        seq = (seq + 1) & 0xFFFF

    send(p.Hello(p.PROTOCOL_VERSION, 0x5C41, "scripted"))
    while True:
        try:
            data = read()
        except OSError:  # the harness closed the port
            data = b""
        if not data and mode == "deaf-to-term":
            while True:  # a hung program: neither hangup nor SIGTERM ends it
                time.sleep(1)
        if not data:
            return 0
        for f in dec.feed(data):
            if f.msg_type == p.MsgType.HELLO:
                send(p.Hello(p.PROTOCOL_VERSION, 0x5C41, "scripted"))
            elif f.msg_type == p.MsgType.CONFIG:
                if mode == "exit3":
                    sys.stderr.write("calibrating IMU\nfatal: IMU self-test failed \x1b[31mred\x1b[0m\n")
                    return 3
                commit = f.msg.flags & p.CONFIG_COMMIT
                send(p.ConfigAck(f.msg.param_id, p.ConfigStatus.COMMITTED if commit else p.ConfigStatus.ACCEPTED,
                                 f.msg.value), f.t_us)
            elif f.msg_type == p.MsgType.SENSORS:
                if mode == "segv":
                    os.kill(os.getpid(), signal.SIGSEGV)
                if mode == "stop":
                    sys.stderr.write("about to stop\n")
                    sys.stderr.flush()
                    os.kill(os.getpid(), signal.SIGSTOP)
                    mode = "serve"
                send(p.Command(0.0, (0.0, 0.0, 0.0), f.seq, 0, 0), f.t_us)
                if mode == "tlm-v1":
                    send(p.Telemetry((0.0,) * 3, (0.0,) * 3, (1.0, 0.0, 0.0, 0.0), 100.0, 0.0, 3, 1,
                                     *([0] * 10)), f.t_us, body_len=76)


if __name__ == "__main__":
    sys.exit(main())
