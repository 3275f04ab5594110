#!/usr/bin/env python3
"""Cancel latency of greetd: time from a client's close to the server's context-error line.

Starts the greetd binary given (default: .build/release/greetd), then, one abort at a time:
connect over loopback, GET /?delay=60s, wait until the server logs the greeting started, close
the socket (FIN, or RST with SO_LINGER 0, alternating), and wait for
`[request_id=N] Context Error: context canceled` on greetd's stderr.

Two figures per abort, both from the moment just before close():
  * logged:  the timestamp greetd wrote in the line (its own clock, CLOCK_REALTIME, µs);
  * arrival: when this script read the line from the pipe (adds pipe and scheduling delay).

Usage: Benchmarks/cancel-latency.py [--binary PATH] [--count N] [--backend epoll|select]
Bounded: N aborts (default 200), loopback only, and it stops greetd when done.
"""
import argparse, os, queue, socket, struct, subprocess, sys, threading, time

from greetd_format import parse_line, parse_time_ns  # greetd's log-line format, shared with run.py
from run import percentile  # the runner's percentile (nearest rank)


def about(request, message):
    """A predicate on raw stderr lines: greetd's line `message` (or one starting with it) for `request`."""
    def matches(text):
        line = parse_line(text)
        return line is not None and line.request_id == str(request) and line.message.startswith(message)
    return matches


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=".build/release/greetd")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--backend", choices=["epoll", "select"], default="epoll")
    ap.add_argument("extra", nargs="*", help="more greetd flags, after --")
    args = ap.parse_args()

    env = dict(os.environ)
    if args.backend == "select":
        env.update(EVENT_NOEPOLL="1", EVENT_NOPOLL="1")
    proc = subprocess.Popen([args.binary, "--host", "127.0.0.1", "--port", "0", "--tick", "1s"] + args.extra,
                            stderr=subprocess.PIPE, env=env, bufsize=0)
    lines = queue.Queue()

    def reader():
        buf = b""
        while True:
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            now = time.time_ns()
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                lines.put((now, line.decode()))

    threading.Thread(target=reader, daemon=True).start()

    def wait_for(pred, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            arrival, line = lines.get(timeout=max(0.001, deadline - time.monotonic()))
            if pred(line):
                return arrival, line

    _, listen = wait_for(lambda l: "Server listening on http://" in l)
    port = int(listen.rsplit(":", 1)[1])

    logged, arrived = [], []
    try:
        for i in range(1, args.count + 1):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /?delay=60s HTTP/1.1\r\nHost: bench\r\n\r\n")
            wait_for(about(i, "Handling greeting request"))
            time.sleep(0.002)
            if i % 2 == 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t0 = time.time_ns()
            s.close()
            arrival, line = wait_for(about(i, "Context Error: context canceled"))
            logged.append(parse_time_ns(parse_line(line).time) - t0)
            arrived.append(arrival - t0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    def row(name, values):
        us = [v / 1000 for v in values]
        return f"| {name} | {percentile(us, 50):.0f} µs | {percentile(us, 99):.0f} µs | {max(us):.0f} µs |"

    print(f"greetd cancel latency, {args.count} aborts one at a time (FIN and RST alternating), backend {args.backend}")
    print("| measured at | p50 | p99 | max |")
    print("|---|---|---|---|")
    print(row("greetd's log timestamp", logged))
    print(row("line read from stderr", arrived))


if __name__ == "__main__":
    main()
