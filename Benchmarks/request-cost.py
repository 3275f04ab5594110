#!/usr/bin/env python3
"""Instructions and allocations per keep-alive request, the method of docs/PERFORMANCE.md.

    python3 Benchmarks/request-cost.py --binary .build/release/greetd [--path '/?delay=0s']

Runs the binary (a stripped copy: valgrind 3.19 cannot read Swift 6's DWARF) under callgrind,
warms up with 200 requests, zeroes the counters, sends 5,000 keep-alive requests over 16
connections and divides the program's instructions by 5,000. Then under dhat: the totals of a
6,000-request run minus those of a 1,000-request run, divided by 5,000. Prints one JSON object.
Any binary that takes greetd's `--port`/`--workers`/`--log-level` flags, or `--args` to give others.
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close(); return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not listen on {port}")

def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk: raise SystemExit("connection closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        rest += s.recv(65536)
    return rest[n:]

def load(port, path, total, conns=16):
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    per = [total // conns + (1 if i < total % conns else 0) for i in range(conns)]
    bufs = [b""] * conns
    for i, s in enumerate(socks):
        for _ in range(per[i]):
            s.sendall(req); bufs[i] = read_response(s, bufs[i])
    for s in socks: s.close()

def run(tool, binary, args, port, path, warm, measured, workdir):
    out = os.path.join(workdir, f"{tool}.out")
    log = os.path.join(workdir, f"{tool}.log")
    extra = ["--callgrind-out-file=" + out] if tool == "callgrind" else ["--dhat-out-file=" + out]
    # The server's own stderr (access lines, one per request) goes nowhere: a pipe nobody reads
    # would fill and block it. valgrind's report goes to its own file.
    proc = subprocess.Popen(["valgrind", f"--tool={tool}", f"--log-file={log}", *extra, binary, *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_port(port, 120)
        load(port, path, warm)
        if tool == "callgrind":
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        load(port, path, measured)
        if tool == "callgrind":
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.send_signal(signal.SIGKILL if tool == "callgrind" else signal.SIGTERM)
        proc.wait(timeout=120)
    with open(log, errors="replace") as f:
        err = f.read()
    return out, err

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--path", default="/?delay=0s")
    ap.add_argument("--args", default="--workers 1 --log-level warning", help="flags besides --port")
    ap.add_argument("--requests", type=int, default=5000)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="request-cost-")
    binary = os.path.join(work, "server")
    shutil.copy(a.binary, binary)
    subprocess.run(["strip", "--strip-debug", binary], check=True)
    result = {"binary": a.binary, "path": a.path, "requests": a.requests}
    port = free_port()
    out, _ = run("callgrind", binary, ["--port", str(port), *a.args.split()], port, a.path, 200, a.requests, work)
    total = 0
    for name in os.listdir(work):
        if name.startswith("callgrind.out"):
            for line in open(os.path.join(work, name)):
                if line.startswith("summary:") or line.startswith("totals:"):
                    total = max(total, int(line.split()[1]))
    result["instructions_per_request"] = round(total / a.requests)
    totals = {}
    for n in (1000, 1000 + a.requests):
        port = free_port()
        _, err = run("dhat", binary, ["--port", str(port), *a.args.split()], port, a.path, n, 0, work)
        blocks = re.search(r"Total:\s+([\d,]+) bytes in ([\d,]+) blocks", err)
        totals[n] = (int(blocks.group(1).replace(",", "")), int(blocks.group(2).replace(",", ""))) if blocks else (0, 0)
    (b0, n0), (b1, n1) = totals[1000], totals[1000 + a.requests]
    result["allocations_per_request"] = round((n1 - n0) / a.requests, 2)
    result["bytes_allocated_per_request"] = round((b1 - b0) / a.requests)
    print(json.dumps(result))

if __name__ == "__main__":
    main()
