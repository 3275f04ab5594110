#!/usr/bin/env python3
"""Network fuzzer for a live greetd: malformed, truncated, oversized and random requests.

Usage:
    scripts/netfuzz.py --binary .build/release/greetd [--count 3000] [--seed N]
    scripts/netfuzz.py --port 8080 [--host 127.0.0.1] [--count 3000] [--seed N]
    scripts/netfuzz.py --binary … --seed N --case 1234      # replay one case, verbosely

With --binary it starts greetd itself on a free loopback port
(`--host 127.0.0.1 --port P --tick 50ms --log-level warning --header-timeout 2s`), keeps its
standard error, and stops it with SIGTERM at the end. With --port it uses a greetd that is
already running (and cannot check its exit status).

Every case runs on its own connection, 50 at a time. The cases are drawn from --seed (each from
its own generator, so case N is the same bytes whatever --count or --case): broken request
lines, header floods, bad chunked bodies, NUL and control bytes, absurd delay/timeout values,
garbage pipelined behind a valid pending request, disconnects (FIN or RST) mid-request, slow
trickles, oversized heads and bodies, random bytes, and a few plain valid requests.

Pass criteria, each checked and printed:
  1. greetd never crashes: the process stays alive, and exits 0 on SIGTERM;
  2. every response is a 4xx, or 200/404/405/503 where the request was valid, and never a 5xx
     other than 503; responses parse; valid control requests are answered as they should be;
     a malformed request is answered or dropped within --header-timeout (no hang);
  3. after the run, /metrics shows greetd_requests_in_flight 0 within a few seconds;
  4. a plain `GET /?delay=0s` still answers 200 `Hello Gopher!`.
Exit status 0 only if all hold (1 otherwise, 2 on bad usage). Failing cases are printed with
their bytes and saved under --artifacts, one raw file each (replay: --case N).

Malformed requests that libevent's parser lets through and greetd then serves (`HTTP/0.0`,
duplicate Content-Length, ...) are listed, and fail the run only with --strict. A method greetd
does not know (`FOO / HTTP/1.1`) gets 405 on / and 404 elsewhere, like any other method it does
not serve (libevent's bare 501 no longer reaches clients: Fuzz/regressions/net/README.md).
"""

import argparse
import collections
import concurrent.futures
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "Benchmarks"))
import greetd_format  # noqa: E402  (greetd's metric names and log-line format, shared with the benchmarks)

HOST = "127.0.0.1"
HEADER_TIMEOUT = 2.0  # what --header-timeout we start greetd with (and assume for --port)
VALID_STATUSES = {200, 404, 405, 503}
ALLOWED_EXTRA = set()  # --allow-status


# --------------------------------------------------------------------------------------------
# Cases


class Case:
    """One connection's worth of client behaviour and what greetd may answer."""

    def __init__(self, index, category, name):
        self.index = index
        self.category = category
        self.name = name
        self.steps = []  # ("send", bytes) | ("sleep", s) | ("trickle", bytes, chunk, interval) | ("fin",) | ("rst",) | ("shut_wr",)
        # First response: None means "4xx only" (the request is malformed); else the allowed set.
        self.first = None
        # Later responses on the same connection (pipelined requests): 4xx only unless given.
        self.rest = None
        self.must_respond = False  # a valid control request: no answer is a failure
        self.body = None  # exact body of the first response, if known
        self.head = False  # first request is HEAD: its response has no body
        self.deadline = HEADER_TIMEOUT + 2.5  # seconds to wait for an answer after the last byte
        self.hang_is_failure = True  # no answer and no close by the deadline is a failure
        self.expect_drop = False  # we close first (disconnect cases): no answer expected
        self.forbid_response = False  # any answer is wrong (the client half-closed first)
        self.slowloris = False  # trickled past --header-timeout: a 200 means the timeout did not hold
        self.framing = None  # a refused framing shape: exactly this one answer, plain text, then a close

    def send(self, data):
        self.steps.append(("send", data))
        return self

    def payload(self):
        out = b""
        for step in self.steps:
            if step[0] in ("send", "trickle"):
                out += step[1]
        return out


def req(method="GET", target="/", headers=None, body=b"", version="HTTP/1.1", close=True):
    lines = [f"{method} {target} {version}".encode("latin-1"), b"Host: 127.0.0.1"]
    for name, value in headers or []:
        lines.append(name + b": " + value if isinstance(name, bytes) else f"{name}: {value}".encode("latin-1"))
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# Absurd `delay`/`timeout` values and what greetd makes of them (as query values, after
# percent-decoding): "bad" and "neg" are refused (400); "zero" is 0; "tiny" is well under a
# second; "big" is over a second (a delay that big is capped at --max-delay and stays pending).
ABSURD_VALUES = [
    ("9999999999999h", "bad"), ("-0", "zero"), ("1e9s", "bad"), ("99999999999999999999999999", "bad"),
    ("9223372036854775808ns", "bad"), ("9223372036854775807ns", "big"), ("-9223372036854775808ns", "neg"),
    ("2562047h47m16.854775808s", "bad"), ("2562047h47m16.854775807s", "big"), ("-2562047h47m16.854775808s", "neg"),
    ("1.5", "bad"), ("5", "bad"), ("5x", "bad"), ("5sec", "bad"), (".s", "bad"), ("s", "bad"), ("-", "bad"),
    ("+", "bad"), ("--1s", "bad"), ("+-1s", "bad"), ("1h-1m", "bad"), ("%zz", "bad"), ("%", "bad"), ("%4", "bad"),
    ("%00", "bad"), ("%00s", "bad"), ("1%00s", "bad"), ("%C2%B5s", "bad"), ("5%C2%B5s", "tiny"),
    ("5%CE%BCs", "tiny"), ("%ff%fe", "bad"), ("1s%0d%0a", "bad"), ("%0aX-Injected:%201", "bad"), ("%22%5c", "bad"),
    ("0x10s", "bad"), ("1_000ms", "bad"), ("1,5s", "bad"), ("1 s", "bad"), ("1+s", "bad"), ("NaN", "bad"),
    ("inf", "bad"), ("Infinity", "bad"), ("-1ns", "neg"), ("-0.0s", "zero"), ("0.", "bad"), (".0", "bad"),
    ("0." + "0" * 200 + "1h", "zero"), ("1" * 300 + "ns", "bad"), ("1." + "9" * 300 + "s", "big"),
    ("1h" * 100, "big"), ("3000000000h", "bad"), ("1e-9s", "bad"), ("\u00b5s", "bad"), ("1\u00b5", "bad"),
    ("%E2%80%A8", "bad"), ("%EF%BB%BF1s", "bad"), ("%2B1ms", "tiny"), ("%2D0", "zero"), ("1%2E5ms", "tiny"),
]
VALID_SMALL = ["0", "0s", "-0", "+0", "1ns", "999us", "1ms", "10ms", "0.01s", "1.5ms", "+10ms", "0h0m0.001s"]


def gen_request_line(c, r):
    kind = r.choice([
        "no-version", "bad-version", "http09", "lowercase", "extra-field", "no-method", "double-space",
        "garbage-method", "long-method", "empty-line", "only-crlfs", "absolute-uri", "asterisk", "connect",
        "bad-percent-path", "tab-separated", "version-garbage", "huge-uri", "lf-only", "space-in-uri", "cr-only",
    ])
    c.name = kind
    if kind == "no-version":
        c.send(b"GET /\r\nHost: x\r\n\r\n")
    elif kind == "bad-version":
        version = r.choice(["HTTP/9.9", "HTTP/1.10", "HTTP/0.0", "HTTP/-1.1", "HTTP/1", "HTTPS/1.1", "HTTP/1.1.1"])
        if version == "HTTP/9.9":
            c.framing = 505  # a well-formed major version above 1: 505 (RFC 9110), the one allowed 5xx
            c.first = {505}
        c.send(req(target="/?delay=0s", version=version))
    elif kind == "http09":
        c.send(b"GET /\r\n")
    elif kind == "lowercase":
        c.send(b"get /?delay=0s http/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    elif kind == "extra-field":
        c.send(b"GET /?delay=0s HTTP/1.1 extra\r\nHost: x\r\nConnection: close\r\n\r\n")
    elif kind == "no-method":
        c.send(b"/ HTTP/1.1\r\nHost: x\r\n\r\n")
    elif kind == "double-space":
        c.send(b"GET  /?delay=0s  HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        c.first = VALID_STATUSES | {400}
        c.hang_is_failure = False
    elif kind == "garbage-method":
        m = bytes(r.choice(b"!#$%&'*+-.^_`|~ABCDEFGHIJKLMNOPQRSTUVWXYZ\x01\x7f\xff") for _ in range(r.randint(1, 12)))
        c.send(m + b" / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    elif kind == "long-method":
        c.send(b"G" * r.randint(1000, 70000) + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
    elif kind == "empty-line":
        c.send(b"\r\n\r\n")
    elif kind == "only-crlfs":
        c.send(b"\r\n" * r.randint(3, 5000))
    elif kind == "absolute-uri":
        c.send(b"GET http://127.0.0.1/?delay=0s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        c.first = VALID_STATUSES | {400}
    elif kind == "asterisk":
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        c.first = VALID_STATUSES | {400}
    elif kind == "connect":
        c.send(b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        c.first = VALID_STATUSES | {400}
    elif kind == "bad-percent-path":
        c.send(b"GET /%zz%%%00%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        c.first = VALID_STATUSES | {400}
    elif kind == "tab-separated":
        c.send(b"GET\t/?delay=0s\tHTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    elif kind == "version-garbage":
        c.send(b"GET / " + bytes(r.randrange(256) for _ in range(r.randint(1, 20))).replace(b"\n", b"") + b"\r\n\r\n")
        c.first = VALID_STATUSES | {400}
        c.hang_is_failure = False
    elif kind == "huge-uri":
        c.send(b"GET /?" + b"a" * r.randint(66000, 200000) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    elif kind == "lf-only":
        c.send(b"GET /?delay=0s HTTP/1.1\nHost: x\nConnection: close\n\n")
        c.first = VALID_STATUSES | {400}
    elif kind == "space-in-uri":
        c.send(b"GET /?delay=0s&a b c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        c.first = VALID_STATUSES | {400}
    elif kind == "cr-only":
        c.send(b"GET /?delay=0s HTTP/1.1\rHost: x\rConnection: close\r\r")
        c.hang_is_failure = False  # no line end yet: greetd waits for one, until --header-timeout
        c.deadline = HEADER_TIMEOUT + 2.5


def gen_header_flood(c, r):
    kind = r.choice(["many-headers", "huge-value", "huge-name", "no-colon", "obs-fold", "dup-content-length",
                     "neg-content-length", "huge-content-length", "many-small-over-limit", "empty-name"])
    c.name = kind
    if kind == "many-headers":
        n = r.choice([1000, 3000, 5000, 10000])
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(n)) + b"Connection: close\r\n\r\n")
        c.first = VALID_STATUSES | {400, 413, 431}  # under 64 KiB the request is fine
    elif kind == "huge-value":
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * r.randint(65537, 300000) + b"\r\n\r\n")
        c.first = {400, 413, 431}
    elif kind == "huge-name":
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"N" * r.randint(65537, 150000) + b": v\r\n\r\n")
    elif kind == "no-colon":
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\nNoColonHere\r\nConnection: close\r\n\r\n")
    elif kind == "obs-fold":
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\nConnection: close\r\n\r\n")
        c.first = VALID_STATUSES | {400}
    elif kind == "dup-content-length":
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde")
    elif kind == "neg-content-length":
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nConnection: close\r\n\r\nabc")
    elif kind == "huge-content-length":
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + r.choice([b"99999999999999999999", b"18446744073709551616", b"9223372036854775807", b"1e9", b"0x10"]) + b"\r\n\r\nabc")
    elif kind == "many-small-over-limit":
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"y" * 60 + b"\r\n" * 1 + b"".join(b"X-%d: %s\r\n" % (i, b"z" * 50) for i in range(2000)) + b"\r\n")
        c.first = {400, 413, 431}
    elif kind == "empty-name":
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\n: empty\r\nConnection: close\r\n\r\n")
        c.first = VALID_STATUSES | {400}


def gen_chunked(c, r):
    kind = r.choice(["bad-size", "overflow-size", "negative-size", "missing-crlf", "no-terminator", "extension-garbage",
                     "te-and-cl", "te-garbage", "get-chunked", "huge-chunk", "truncated"])
    c.name = kind
    method = r.choice([b"POST", b"PUT", b"GET"])
    head = method + b" / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    c.first = {405} | set(range(400, 500)) if method != b"GET" else None
    if kind == "bad-size":
        c.send(head + b"zz\r\nabc\r\n0\r\n\r\n")
    elif kind == "overflow-size":
        c.send(head + r.choice([b"ffffffffffffffffff", b"8000000000000000", b"7fffffffffffffff"]) + b"\r\nabc\r\n")
    elif kind == "negative-size":
        c.send(head + b"-1\r\nabc\r\n0\r\n\r\n")
    elif kind == "missing-crlf":
        c.send(head + b"3\r\nabcdef0\r\n\r\n")
    elif kind == "no-terminator":
        c.send(head + b"3\r\nabc\r\n")  # waits for more: dropped by --header-timeout, or answered
        c.hang_is_failure = False
    elif kind == "extension-garbage":
        c.send(head + b"3;\x00\x01=\xff\r\nabc\r\n0\r\n\r\n")
    elif kind == "te-and-cl":
        c.send(method + b" / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /?delay=0s HTTP/1.1\r\n\r\n")
        c.rest = VALID_STATUSES | set(range(400, 500))  # smuggled request: noted, answered or not
    elif kind == "te-garbage":
        c.send(method + b" / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, \x01\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    elif kind == "get-chunked":
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        c.first = VALID_STATUSES | {400}
    elif kind == "huge-chunk":
        c.send(head + b"200000\r\n" + b"x" * 0x200000 + b"\r\n0\r\n\r\n")  # 2 MiB > --max-body-bytes
        c.first = {405, 413} | set(range(400, 500))
    elif kind == "truncated":
        full = head + b"5\r\nhello\r\n0\r\n\r\n"
        c.send(full[: r.randint(len(head) + 1, len(full) - 1)])
        c.hang_is_failure = False

SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
FRAMING_SHAPES = {  # RFC 9112 framing greetd refuses, each followed by a smuggled request
    "cl-conflict": (400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)),
    "te-and-cl": (400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "te-not-chunked": (501, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
    "te-twice": (501, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "head-with-body": (400, b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)),
    "trace-with-body": (400, b"TRACE / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)),
    "unknown-with-body": (400, b"BREW / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "space-before-colon": (400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : %d\r\n\r\n" % len(SMUGGLED)),
    "chunk-0x": (400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"),
    "chunk-plus": (400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n"),
    "chunk-space": (400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n"),
    "chunk-no-crlf": (400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc"),
    "no-host": (400, b"GET / HTTP/1.1\r\n\r\n"),
    "two-hosts": (400, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    "http09": (400, b"GET /\r\n"),
    "not-http": (400, b"GET / FTP/1.1\r\nHost: x\r\n\r\n"),
    "http2": (505, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
    "http3": (505, b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"),
}
FRAMING_ACCEPTED = {  # valid framing greetd must serve
    "chunk-extension": b"POST /?delay=0s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
    "leading-crlf": b"\r\n\r\nGET /?delay=0s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "http12": b"GET /?delay=0s HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n",
}


def gen_framing(c, r):
    """RFC 9112 framing: each refused shape gets its status once, plain text, and a close; the
    request smuggled behind it is never answered. Sent whole or split at a random byte."""
    kind = r.choice(sorted(FRAMING_SHAPES) + sorted(FRAMING_ACCEPTED))
    c.name = kind
    if kind in FRAMING_ACCEPTED:
        data = FRAMING_ACCEPTED[kind]
        c.first = {200, 405}
        c.must_respond = True
    else:
        status, data = FRAMING_SHAPES[kind]
        data += SMUGGLED
        c.first = {status}
        c.framing = status
    if r.random() < 0.5:
        cut = r.randint(1, len(data) - 1)
        c.send(data[:cut])
        c.steps.append(("sleep", 0.02))
        c.send(data[cut:])
    else:
        c.send(data)


def gen_control(c, r):
    kind = r.choice(["nul-in-uri", "nul-in-header", "ctl-in-header-name", "ctl-in-value", "del", "high-bytes",
                     "bare-cr-header", "nul-method", "ansi-in-uri", "utf8-overlong-uri", "request-id-garbage"])
    c.name = kind
    c.first = VALID_STATUSES | set(range(400, 500))  # lenient parsers may accept; 5xx never
    c.hang_is_failure = False
    if kind == "nul-in-uri":
        c.send(b"GET /?delay=0s\x00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    elif kind == "nul-in-header":
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\nX-N: a\x00b\r\nConnection: close\r\n\r\n")
    elif kind == "ctl-in-header-name":
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\nX\x01\x02: v\r\nConnection: close\r\n\r\n")
    elif kind == "ctl-in-value":
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\nX-V: " + bytes(r.randrange(1, 32) for _ in range(20)).replace(b"\n", b"") + b"\r\nConnection: close\r\n\r\n")
    elif kind == "del":
        c.send(b"GET /\x7f?delay=0s\x7f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    elif kind == "high-bytes":
        c.send(b"GET /\xff\xfe?delay=\xc3\x28 HTTP/1.1\r\nHost: \xff\r\nConnection: close\r\n\r\n")
    elif kind == "bare-cr-header":
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\r\nConnection: close\r\n\r\n")
    elif kind == "nul-method":
        c.send(b"\x00\x00\x00 / HTTP/1.1\r\nHost: x\r\n\r\n")
        c.first = None
        c.hang_is_failure = True
    elif kind == "ansi-in-uri":
        c.send(b"GET /\x1b[31m\x1b]0;title\x07?delay=0s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    elif kind == "utf8-overlong-uri":
        c.send(b"GET /%c0%af?delay=%c0%b0s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    elif kind == "request-id-garbage":
        value = r.choice([b"a\x01b", b"x" * 65, b"a b", b"\xff\xfe", b"ok-id", b"a]b", b"%0d%0a"])
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + value + b"\r\nConnection: close\r\n\r\n")


def pct_garbage(r):
    return "".join(r.choice(["%", "%%", "%0", "%zz", "%00", "%ff", "%C2", "%B5", "+", "&", "=", ";", "#", "?", "a", "1", "s"])
                   for _ in range(r.randint(1, 12)))


def delay_outcome(c, cls):
    """What `?delay=<value of class cls>` gets."""
    if cls in ("bad", "neg"):
        c.first = {400}
    elif cls in ("zero", "tiny"):
        c.first, c.body = {200}, b"Hello Gopher!\n"
    else:  # big: capped at --max-delay and pending; the case hangs up after a while (a cancel)
        c.first = {200}
        c.must_respond = False
        c.hang_is_failure = False
        c.deadline = 1.5


def timeout_outcome(c, cls):
    """What `?delay=0s&timeout=<value of class cls>` gets."""
    c.first = {400} if cls in ("bad", "neg") else {503} if cls == "zero" else {200}


def number_class(digits, unit):
    """Class of `<digits><unit>` for the random-number cases (Go: valid iff it fits in int64 ns)."""
    if unit == "":
        return "zero" if digits == "0" else "bad"  # only a lone "0" may go without a unit
    scale = {"h": 3_600_000_000_000, "ns": 1}.get(unit)
    if scale is None or int(digits) * scale > 2**63 - 1:
        return "bad"
    ns = int(digits) * scale
    return "zero" if ns == 0 else "tiny" if ns < 500_000_000 else "big"


def gen_params(c, r):
    kind = r.choice(["absurd-delay", "absurd-timeout", "valid-small", "random-number", "pct-garbage", "repeated",
                     "both-absurd", "timeout-zero", "negative", "empty-values", "malformed-query", "head-absurd"])
    c.name = kind
    c.first = {400}
    c.must_respond = True
    if kind == "absurd-delay":
        v, cls = r.choice(ABSURD_VALUES)
        c.name += ":" + v[:40]
        c.send(req(target="/?delay=" + v))
        delay_outcome(c, cls)
    elif kind == "absurd-timeout":
        v, cls = r.choice(ABSURD_VALUES)
        c.name += ":" + v[:40]
        c.send(req(target="/?delay=0s&timeout=" + v))
        timeout_outcome(c, cls)
    elif kind == "valid-small":
        v = r.choice(VALID_SMALL)
        c.name += ":" + v
        c.send(req(target="/?delay=" + v.replace("+", "%2B")))
        c.first, c.body = {200}, b"Hello Gopher!\n"
    elif kind == "random-number":
        digits = "".join(r.choice("0123456789") for _ in range(r.randint(1, 40)))
        unit = r.choice(["", "h", "ns", "ns", "e9s", ".5", "x"])
        c.name += ":" + (digits + unit)[:40]
        if r.random() < 0.5:
            c.send(req(target="/?delay=" + digits + unit))
            delay_outcome(c, number_class(digits, unit))
        else:
            c.send(req(target="/?timeout=" + digits + unit + "&delay=0s"))
            timeout_outcome(c, number_class(digits, unit))
    elif kind == "pct-garbage":
        c.send(req(target="/?delay=" + pct_garbage(r)))
        c.first = {400, 200}  # garbage that happens to spell a duration is not an error
        c.must_respond = False
        c.hang_is_failure = False
        c.deadline = 1.5
    elif kind == "repeated":
        n = r.randint(2, 2000)
        first, cls = r.choice([("0s", "zero"), ("1ms", "tiny"), ("bad", "bad"), ("-1s", "neg")])
        c.send(req(target="/?" + "&".join(["delay=" + first] + ["delay=" + r.choice(ABSURD_VALUES)[0] for _ in range(n)])))
        delay_outcome(c, cls)  # the first `delay` counts
        c.first = c.first | {400, 413, 414}  # a target that long may be refused as such
    elif kind == "both-absurd":
        (dv, dcls), (tv, tcls) = r.choice(ABSURD_VALUES), r.choice(ABSURD_VALUES)
        c.name += ":" + dv[:20] + "," + tv[:20]
        c.send(req(target="/?delay=%s&timeout=%s" % (dv, tv)))
        if dcls in ("bad", "neg") or tcls in ("bad", "neg"):
            c.first = {400}
        elif tcls == "zero":
            c.first = {503}
        elif dcls in ("zero", "tiny"):
            c.first = {200, 503}  # a tiny delay and a tiny timeout race
        elif tcls == "tiny":
            c.first = {503}
        else:
            delay_outcome(c, "big")
    elif kind == "timeout-zero":
        c.send(req(target="/?delay=1s&timeout=" + r.choice(["0", "0s", "-0", "1ns", "1us"])))
        c.first = {503}
    elif kind == "negative":
        c.send(req(target="/?delay=" + r.choice(["-1ns", "-1s", "-2562047h47m16.854775808s", "-0.5ms"])))
    elif kind == "empty-values":
        # Go's rules: a name without `=` has an empty value, so `delay` is `delay=`: 400.
        c.send(req(target="/?" + r.choice(["delay=", "timeout=", "delay=&timeout=", "delay", "&delay", "=&delay",
                                            "delay&timeout", "delay=0s;timeout=0s"])))
    elif kind == "malformed-query":
        # Names greetd does not read and empty arguments are never a 400 (Go skips them).
        c.send(req(target="/?" + r.choice(["a&delay=0s", "&delay=0s", "delay=0s&&x=1", "delay=0s&cachebust",
                                            "=&delay=0s", ";&delay=0s", "&&delay=0s&"])))
        c.first, c.body = {200}, b"Hello Gopher!\n"
    elif kind == "head-absurd":
        v, cls = r.choice(ABSURD_VALUES)
        c.name += ":" + v[:40]
        c.send(req(method="HEAD", target="/?delay=" + v))
        c.head = True
        delay_outcome(c, cls)
        c.body = None


def junk(r, size):
    kind = r.choice(["random", "broken-line", "ctl", "half-request"])
    if kind == "random":
        data = bytes(r.randrange(256) for _ in range(size))
        return b"\x01" + data  # never a valid method
    if kind == "broken-line":
        return (b"\x01BROKEN / HTTP/9\r\n" * (size // 18 + 1))[:size] + b"\r\n\r\n"
    if kind == "ctl":
        return bytes(r.randrange(0, 32) for _ in range(size))
    return b"GET /?delay=" + b"9" * size  # no line end


def gen_pipelined(c, r):
    kind = r.choice(["small-junk", "medium-junk", "over-pipeline-limit", "junk-then-close", "two-valid-then-junk"])
    c.name = kind
    valid = b"GET /?delay=300ms HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    c.deadline = 0.3 + HEADER_TIMEOUT + 2.5
    c.first = {200}
    c.body = b"Hello Gopher!\n"
    if kind == "small-junk":
        c.send(valid + junk(r, r.randint(1, 200)))
        c.must_respond = True
    elif kind == "medium-junk":
        c.send(valid).steps.append(("sleep", 0.05))
        c.send(junk(r, r.randint(1000, 60000)))
        c.must_respond = True
    elif kind == "over-pipeline-limit":
        # More than --pipeline-limit (64 KiB) behind the pending request: greetd drops the
        # connection (no answer), or answers the request first.
        c.send(valid).steps.append(("sleep", 0.05))
        c.send(junk(r, r.randint(70000, 300000)))
    elif kind == "junk-then-close":
        c.send(valid + junk(r, r.randint(1, 500)))
        c.steps.append(("sleep", 0.1))
        c.steps.append((r.choice(["fin", "rst"]),))
        c.expect_drop = True
    elif kind == "two-valid-then-junk":
        c.send(valid + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + junk(r, r.randint(1, 300)))
        c.rest = {200} | set(range(400, 500))
        c.must_respond = True


def gen_disconnect(c, r):
    kind = r.choice(["fin-after-bytes", "rst-after-bytes", "pending-then-rst", "pending-then-fin", "pending-then-shutwr",
                     "rst-mid-body", "connect-only-rst", "connect-only-fin"])
    c.name = kind
    c.expect_drop = True
    full = req(target="/?delay=%dms" % r.randint(100, 2000), close=False)
    if kind in ("fin-after-bytes", "rst-after-bytes"):
        c.send(full[: r.randint(1, len(full) - 1)])
        c.steps.append(("sleep", r.uniform(0, 0.05)))
        c.steps.append(("fin",) if kind.startswith("fin") else ("rst",))
    elif kind.startswith("pending-then-"):
        # Hang up well before the delay is over: greetd must cancel, never answer.
        delay = int(full.split(b"delay=")[1].split(b"ms")[0]) / 1000
        c.send(full)
        c.steps.append(("sleep", r.uniform(0.01, max(0.01, delay - 0.1))))
        c.steps.append({"rst": ("rst",), "fin": ("fin",), "shutwr": ("shut_wr",)}[kind.rsplit("-", 1)[1]])
        if kind.endswith("shutwr"):
            # Half-close: greetd takes it for the client leaving (README), cancels and closes.
            c.expect_drop = False
            c.forbid_response = True
            c.hang_is_failure = False
            c.deadline = delay + 1.0
    elif kind == "rst-mid-body":
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"b" * r.randint(1, 50000))
        c.steps.append(("rst",))
    elif kind == "connect-only-rst":
        c.steps.append(("rst",))
    elif kind == "connect-only-fin":
        c.steps.append(("fin",))


def gen_trickle(c, r):
    kind = r.choice(["valid-fast", "valid-slow", "garbage-slow", "headers-forever"])
    c.name = kind
    if kind == "valid-fast":
        data = req(target="/?delay=0s")
        c.steps.append(("trickle", data, r.randint(1, 8), 0.005))  # well within --header-timeout
        c.first = {200}
        c.must_respond = True
    elif kind == "valid-slow":
        data = req(target="/?delay=0s")
        c.steps.append(("trickle", data, 1, 0.06))  # ~4 s for ~70 bytes: past a 2 s --header-timeout
        c.first = {200, 408} | set(range(400, 500))
        c.slowloris = len(data) * 0.06 > HEADER_TIMEOUT + 1
    elif kind == "garbage-slow":
        c.steps.append(("trickle", bytes(r.randrange(32, 127) for _ in range(40)), 1, 0.07))
        c.first = set(range(400, 500))
    elif kind == "headers-forever":
        c.steps.append(("trickle", b"GET / HTTP/1.1\r\n" + b"X-Slow: a\r\n" * 20, 4, 0.1))
        c.first = {408} | set(range(400, 500))


def gen_oversized(c, r):
    kind = r.choice(["big-body-cl", "big-body-get", "head-just-over", "body-at-limit"])
    c.name = kind
    if kind == "big-body-cl":
        n = r.randint(1048577, 1500000)
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % n + b"x" * n)
        c.first = {405, 413}
    elif kind == "big-body-get":
        n = r.randint(1048577, 1300000)
        c.send(b"GET /?delay=0s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % n + b"x" * n)
        c.first = {413}
    elif kind == "head-just-over":
        pad = 65536 - 40 + r.randint(0, 200)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * pad + b"\r\n\r\n")
        c.first = {200, 400, 413, 431}  # right at the edge either way, never 5xx
        c.hang_is_failure = False
    elif kind == "body-at-limit":
        n = 1048576
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % n + b"x" * n)
        c.first = {405, 413}


def gen_random(c, r):
    kind = r.choice(["bytes", "printable", "after-valid-line", "mutated-valid"])
    c.name = kind
    c.first = VALID_STATUSES | set(range(400, 500))
    c.hang_is_failure = False
    c.deadline = HEADER_TIMEOUT + 2.5
    if kind == "bytes":
        c.send(bytes(r.randrange(256) for _ in range(r.randint(1, 4096))))
    elif kind == "printable":
        c.send(bytes(r.randrange(32, 127) for _ in range(r.randint(1, 2048))) + b"\r\n\r\n")
    elif kind == "after-valid-line":
        c.send(b"GET /?delay=0s HTTP/1.1\r\n" + bytes(r.randrange(256) for _ in range(r.randint(1, 1024))) + b"\r\n\r\n")
    else:
        data = bytearray(req(target="/?delay=0s&timeout=1s"))
        for _ in range(r.randint(1, 8)):
            op = r.randrange(3)
            i = r.randrange(len(data))
            if op == 0:
                data[i] = r.randrange(256)
            elif op == 1:
                data.insert(i, r.randrange(256))
            elif len(data) > 1:
                del data[i]
        c.send(bytes(data))


def gen_valid(c, r):
    kind = r.choice(["healthz", "metrics", "greet-0s", "head", "not-found", "post-root", "greet-with-id", "greet-20ms"])
    c.name = kind
    c.must_respond = True
    if kind == "healthz":
        c.send(req(target="/healthz"))
        c.first, c.body = {200}, b"ok\n"
    elif kind == "metrics":
        c.send(req(target="/metrics"))
        c.first = {200}
    elif kind == "greet-0s":
        c.send(req(target="/?delay=0s"))
        c.first, c.body = {200}, b"Hello Gopher!\n"
    elif kind == "head":
        c.send(req(method="HEAD", target="/?delay=0s"))
        c.first, c.head = {200}, True
    elif kind == "not-found":
        c.send(req(target="/nope"))
        c.first = {404}
    elif kind == "post-root":
        c.send(req(method="POST", target="/", headers=[("Content-Length", "0")]))
        c.first = {405}
    elif kind == "greet-with-id":
        c.send(req(target="/?delay=0s", headers=[("X-Request-Id", "netfuzz-%d" % c.index)]))
        c.first, c.body = {200}, b"Hello Gopher!\n"
    elif kind == "greet-20ms":
        c.send(req(target="/?delay=20ms"))
        c.first, c.body = {200}, b"Hello Gopher!\n"


CATEGORIES = [  # (name, weight, generator)
    ("request-line", 12, gen_request_line),
    ("header-flood", 6, gen_header_flood),
    ("chunked", 8, gen_chunked),
    ("control-bytes", 8, gen_control),
    ("params", 22, gen_params),
    ("pipelined", 10, gen_pipelined),
    ("disconnect", 10, gen_disconnect),
    ("trickle", 3, gen_trickle),
    ("oversized", 3, gen_oversized),
    ("random", 12, gen_random),
    ("valid", 6, gen_valid),
    ("framing", 8, gen_framing),
]


def make_case(seed, index):
    r = random.Random(f"{seed}:{index}")
    names = [c[0] for c in CATEGORIES]
    weights = [c[1] for c in CATEGORIES]
    category = r.choices(names, weights)[0]
    case = Case(index, category, "")
    dict((n, g) for n, _, g in CATEGORIES)[category](case, r)
    return case


# --------------------------------------------------------------------------------------------
# Running a case


class Outcome:
    def __init__(self, case):
        self.case = case
        self.statuses = []
        self.bodies = []
        self.ending = None  # "eof" | "reset" | "timeout" | "we-closed" | "connect-failed"
        self.send_error = None
        self.problems = []
        self.raw = b""
        self.elapsed = 0.0
        self.header_problems = []
        self.lenient = []  # a malformed request answered as if valid (evhttp's leniency)


# evhttp echoes the request's version, however odd ("HTTP/-1.1 200 OK"): accept any, note it.
STATUS_LINE = re.compile(rb"HTTP/([^ \r\n]*) (\d{3})[^\r\n]*\r\n")
# In a response's header block, anything but printable bytes, tab and CRLF line ends (a client's
# bytes echoed into a header would show up here).
BAD_HEADER_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")


def parse_responses(buf, head_first):
    """Returns (statuses, bodies, rest, error). Stops at an incomplete response."""
    statuses, bodies, pos = [], [], 0
    while pos < len(buf):
        m = STATUS_LINE.match(buf, pos)
        if not m:
            if len(buf) - pos < 16 and b"HTTP/".startswith(buf[pos:pos + 5]) and b"\r\n" not in buf[pos:]:
                return statuses, bodies, buf[pos:], None  # incomplete status line
            return statuses, bodies, buf[pos:], "unparseable bytes where a response should start: %r" % buf[pos:pos + 60]
        end = buf.find(b"\r\n\r\n", m.end() - 2)
        if end < 0:
            return statuses, bodies, buf[pos:], None
        status = int(m.group(2))
        headers = buf[m.end():end + 2]
        length = None
        for line in headers.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    return statuses, bodies, buf[pos:], "bad Content-Length in response: %r" % line
        body_start = end + 4
        if 100 <= status < 200:
            pos = body_start
            continue
        if (head_first and not statuses) or status in (204, 304):
            length = 0
        if length is None:
            length = len(buf) - body_start  # until close
        if len(buf) - body_start < length:
            return statuses, bodies, buf[pos:], None
        statuses.append(status)
        bodies.append(buf[body_start:body_start + length])
        pos = body_start + length
    return statuses, bodies, b"", None


def run_case(case, host, port, verbose=False):
    out = Outcome(case)
    start = time.monotonic()
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        out.ending = "connect-failed"
        out.problems.append("cannot connect: %s" % e)
        return out
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    closed_by_us = False
    try:
        try:
            for step in case.steps:
                if step[0] == "send":
                    s.sendall(step[1])
                elif step[0] == "sleep":
                    time.sleep(step[1])
                elif step[0] == "trickle":
                    data, chunk, interval = step[1], step[2], step[3]
                    for i in range(0, len(data), chunk):
                        s.sendall(data[i:i + chunk])
                        time.sleep(interval)
                elif step[0] == "fin":
                    s.close()  # an orderly close: FIN
                    out.ending = "we-closed"
                    out.elapsed = time.monotonic() - start
                    return out
                elif step[0] == "shut_wr":
                    s.shutdown(socket.SHUT_WR)
                elif step[0] == "rst":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
                    out.ending = "we-closed"
                    out.elapsed = time.monotonic() - start
                    return out
        except OSError as e:
            out.send_error = e.__class__.__name__

        # Read until the server closes, resets, goes quiet after an answer, or the deadline.
        buf = b""
        deadline = time.monotonic() + (case.deadline if not closed_by_us else 1.0)
        quiet_after_answer = 0.4
        last_data = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                out.ending = out.ending or "timeout"
                break
            statuses, _, _, _ = parse_responses(buf, case.head)
            if statuses and now - last_data >= quiet_after_answer:
                out.ending = "quiet"
                break
            s.settimeout(min(0.1, deadline - now))
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                out.ending = "reset"
                break
            except OSError as e:
                out.ending = "error:" + e.__class__.__name__
                break
            if not data:
                out.ending = "eof"
                break
            buf += data
            last_data = time.monotonic()
        if closed_by_us and out.ending in ("timeout", "quiet"):
            out.ending = "we-closed"
        out.raw = buf
        out.statuses, out.bodies, rest, error = parse_responses(buf, case.head)
        for m in STATUS_LINE.finditer(buf):
            end = buf.find(b"\r\n\r\n", m.end() - 2)
            if end >= 0 and BAD_HEADER_BYTES.search(buf[m.end():end]):
                out.header_problems.append("response header with a control byte or bare CR/LF: %r" % buf[m.end():end][:200])
                break
        if error:
            out.problems.append(error)
        elif rest and out.ending == "eof":
            out.problems.append("response cut short by the server's close: %r" % rest[:80])
    finally:
        try:
            s.close()
        except OSError:
            pass
    out.elapsed = time.monotonic() - start
    judge(out)
    if verbose:
        print("case %d %s/%s: statuses %s, ending %s, send error %s, %.2fs" % (
            case.index, case.category, case.name, out.statuses, out.ending, out.send_error, out.elapsed))
        print("  sent %d bytes: %r" % (len(case.payload()), case.payload()[:300]))
        print("  received %d bytes: %r" % (len(out.raw), out.raw[:600]))
    return out


def describe(statuses):
    """`{200, 400…499}` as `200 or 4xx`."""
    four = set(range(400, 500))
    parts = [str(x) for x in sorted(statuses - four)] if four <= statuses else [str(x) for x in sorted(statuses)]
    if four <= statuses:
        parts.append("4xx")
    return " or ".join(parts)


def judge(out):
    case = out.case
    for i, status in enumerate(out.statuses):
        if status in ALLOWED_EXTRA:
            continue
        if status >= 500 and status != 503 and not (i == 0 and status == case.framing):
            out.problems.append("answered %d (a 5xx other than 503)" % status)
            continue
        allowed = case.first if i == 0 else case.rest
        if allowed is None:
            if status in VALID_STATUSES:
                out.lenient.append("%s response %d to a malformed request" % ("first" if i == 0 else "pipelined", status))
            elif not 400 <= status < 500:
                out.problems.append("%s response %d to a malformed request (only 4xx allowed)" % ("first" if i == 0 else "pipelined", status))
        elif status not in allowed and not (i > 0 and 400 <= status < 500):
            out.problems.append("%s response %d, expected %s" % ("first" if i == 0 else "pipelined", status, describe(allowed)))
    odd = [m.group(1) for m in STATUS_LINE.finditer(out.raw) if m.group(1) not in (b"1.0", b"1.1")]
    if odd:
        out.lenient.append("status line with version %r" % odd[0])
    if case.body is not None and out.statuses and out.statuses[0] in (200,) and out.bodies and out.bodies[0] != case.body:
        out.problems.append("body %r, expected %r" % (out.bodies[0][:80], case.body))
    if case.must_respond and not out.statuses and not case.expect_drop:
        out.problems.append("no answer (ending: %s, send error: %s)" % (out.ending, out.send_error))
    if case.forbid_response and out.statuses:
        out.problems.append("answered %d after the client half-closed: the greeting was not cancelled" % out.statuses[0])
    if case.slowloris and out.statuses and out.statuses[0] == 200:
        out.problems.append("answered 200 to a request trickled over %.1fs (--header-timeout is %gs)" % (out.elapsed, HEADER_TIMEOUT))
    if case.framing is not None:
        if len(out.statuses) > 1:
            out.problems.append("framing: %d answers; the smuggled request was answered" % len(out.statuses))
        if out.statuses and (b"Connection: close\r\n" not in out.raw or b"Content-Type: text/plain; charset=utf-8\r\n" not in out.raw
                             or b"X-Request-Id: " not in out.raw):
            out.problems.append("framing: the refusal lacks Connection: close, text/plain or X-Request-Id")
        if out.ending not in ("eof", "reset"):
            out.problems.append("framing: the connection was not closed (ending: %s)" % out.ending)
    for problem in out.header_problems:
        out.problems.append(problem)
    if (out.ending == "timeout" and not out.statuses and case.hang_is_failure and not case.expect_drop
            and not case.must_respond):
        out.problems.append("no answer and no close %.1fs after the request (--header-timeout is %gs)" % (case.deadline, HEADER_TIMEOUT))


# --------------------------------------------------------------------------------------------
# greetd


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get(host, port, target, timeout=5.0):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(req(target=target))
        buf = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            buf += data
    statuses, bodies, _, _ = parse_responses(buf, False)
    return (statuses[0], bodies[0]) if statuses else (None, buf)


def in_flight(host, port):
    status, body = http_get(host, port, "/metrics")
    if status != 200:
        return None
    return greetd_format.metric_value(body, greetd_format.REQUESTS_IN_FLIGHT)


class Greetd:
    def __init__(self, binary, port, extra):
        self.log = tempfile.NamedTemporaryFile(prefix="netfuzz-greetd-", suffix=".log", delete=False)
        self.command = [binary, "--host", HOST, "--port", str(port), "--tick", "50ms", "--log-level", "warning",
                        "--header-timeout", "%gs" % HEADER_TIMEOUT] + extra
        self.proc = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = port

    def wait_ready(self, timeout=15.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                if http_get(HOST, self.port, "/healthz", timeout=1.0)[0] == 200:
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=25.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def log_text(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------


def main():
    global HEADER_TIMEOUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    target = ap.add_mutually_exclusive_group(required=True)
    target.add_argument("--binary", help="greetd binary to start (on a free loopback port)")
    target.add_argument("--port", type=int, help="port of a greetd already running")
    ap.add_argument("--host", default=HOST, help="host of a running greetd (with --port; default %(default)s)")
    ap.add_argument("--count", type=int, default=3000, help="number of cases (default %(default)s)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--concurrency", type=int, default=50, help="connections at a time (default %(default)s)")
    ap.add_argument("--case", type=int, action="append", help="run only this case number (repeatable), verbosely")
    ap.add_argument("--artifacts", default=None, help="where failing cases are saved (default .build-fuzz/netfuzz)")
    ap.add_argument("--greetd-arg", action="append", default=[], help="extra flag for the started greetd (repeatable)")
    ap.add_argument("--header-timeout", type=float, default=HEADER_TIMEOUT,
                    help="greetd's --header-timeout in seconds: passed to the started greetd, assumed for a running one"
                         " (default %(default)g)")
    ap.add_argument("--verbose", action="store_true", help="print every case")
    ap.add_argument("--strict", action="store_true",
                    help="a malformed request answered as if valid (libevent's leniency: HTTP/0.0, bare LF, ...) fails the run")
    ap.add_argument("--allow-status", type=int, action="append", default=[],
                    help="accept this 5xx too (none is expected from greetd; for other servers); repeatable")
    args = ap.parse_args()
    ALLOWED_EXTRA.update(args.allow_status)
    HEADER_TIMEOUT = args.header_timeout
    if args.count < 1 or args.concurrency < 1:
        ap.error("--count and --concurrency must be positive")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    artifacts = args.artifacts or os.path.join(root, ".build-fuzz", "netfuzz")

    greetd = None
    host = args.host
    if args.binary:
        if not os.access(args.binary, os.X_OK):
            print("netfuzz: %s is not an executable (build it: swift build -c release --product greetd)" % args.binary, file=sys.stderr)
            return 2
        host = HOST
        port = free_port()
        greetd = Greetd(args.binary, port, args.greetd_arg)
        STARTED.append(greetd)
        if not greetd.wait_ready():
            print("netfuzz: greetd did not come up on %s:%d; its output:\n%s" % (HOST, port, greetd.log_text()), file=sys.stderr)
            greetd.stop(5)
            return 1
        print("netfuzz: started %s (pid %d); log %s" % (" ".join(greetd.command), greetd.proc.pid, greetd.log.name))
    else:
        port = args.port
    indices = args.case if args.case else list(range(args.count))
    print("netfuzz: %d cases against %s:%d, seed %d, concurrency %d" % (len(indices), host, port, seed, args.concurrency))

    cases = [make_case(seed, i) for i in indices]
    outcomes = []
    died_at = None
    lock = threading.Lock()
    started = time.monotonic()
    verbose = args.verbose or bool(args.case)
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = {pool.submit(run_case, c, host, port, verbose): c for c in cases}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            out = future.result()
            with lock:
                outcomes.append(out)
            if greetd and died_at is None and not greetd.alive():
                died_at = done
                print("netfuzz: greetd DIED after %d cases (exit status %s)" % (done, greetd.proc.returncode))
            if done % 500 == 0 and not verbose:
                print("  %d/%d cases, %.1fs" % (done, len(cases), time.monotonic() - started))
    elapsed = time.monotonic() - started

    # ---- summary
    failures = [o for o in outcomes if o.problems]
    by_category = collections.Counter(o.case.category for o in outcomes)
    by_status = collections.Counter()
    endings = collections.Counter()
    for o in outcomes:
        for st in o.statuses:
            by_status[st] += 1
        if not o.statuses:
            by_status["none"] += 1
        endings[o.ending] += 1
        if o.send_error:
            endings["send-error:" + o.send_error] += 1
    print()
    print("Cases: %d in %.1fs" % (len(outcomes), elapsed))
    print("  by category: " + ", ".join("%s %d" % kv for kv in sorted(by_category.items())))
    print("  responses by status: " + ", ".join("%s %d" % (k, v) for k, v in sorted(by_status.items(), key=lambda kv: str(kv[0]))))
    resets = sum(1 for o in outcomes if o.ending == "reset" or o.send_error == "ConnectionResetError")
    closes = sum(1 for o in outcomes if o.ending == "eof")
    print("  closed by greetd: %d (%d of them with no answer); reset by greetd: %d; send failed (EPIPE/ECONNRESET): %d" % (
        closes, sum(1 for o in outcomes if o.ending == "eof" and not o.statuses), resets,
        sum(1 for o in outcomes if o.send_error)))
    print("  connection endings: " + ", ".join("%s %d" % kv for kv in sorted(endings.items())))
    print("    (eof: greetd closed; reset: greetd reset; quiet: answered, then kept open; we-closed: the case"
          " hung up itself; timeout: no close by the case's deadline)")

    checks = []
    if failures:
        os.makedirs(artifacts, exist_ok=True)
        print()
        kinds = collections.Counter("%s/%s: %s" % (o.case.category, o.case.name.split(":")[0], re.sub(r" ?b['\"].*", "", o.problems[0])[:80])
                                    for o in failures)
        print("Failing cases by kind:")
        for kind, n in kinds.most_common():
            print("  %4d  %s" % (n, kind))
        print("Failing cases (%d; first 25):" % len(failures))
        for o in failures:
            with open(os.path.join(artifacts, "seed%d-case%d.bin" % (seed, o.case.index)), "wb") as f:
                f.write(o.case.payload())
        for o in sorted(failures, key=lambda o: o.case.index)[:25]:
            path = os.path.join(artifacts, "seed%d-case%d.bin" % (seed, o.case.index))
            print("  case %d [%s/%s]: %s" % (o.case.index, o.case.category, o.case.name, "; ".join(o.problems)))
            print("    sent %r%s" % (o.case.payload()[:200], " …" if len(o.case.payload()) > 200 else ""))
            print("    got  %r (ending %s)" % (o.raw[:200], o.ending))
            print("    saved %s; replay: scripts/netfuzz.py … --seed %d --case %d" % (path, seed, o.case.index))
    checks.append(("every response allowed (4xx; 200/404/405/503 only where valid; no other 5xx), no hang",
                   not failures, "%d failing cases" % len(failures) if failures else "%d cases clean" % len(outcomes)))

    lenient = [o for o in outcomes if o.lenient]
    if lenient:
        kinds = collections.Counter("%s/%s" % (o.case.category, o.case.name.split(":")[0]) for o in lenient)
        print()
        print("Malformed requests answered as if valid (%d; %s): %s" % (
            len(lenient), "a failure with --strict" if args.strict else "noted, not a failure without --strict",
            ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
        for o in sorted(lenient, key=lambda o: o.case.index)[:6]:
            print("  case %d: %s: sent %r" % (o.case.index, "; ".join(o.lenient), o.case.payload()[:120]))
    if args.strict:
        checks.append(("no malformed request answered as if valid (--strict)", not lenient, "%d cases" % len(lenient)))

    if greetd:
        checks.append(("greetd alive through the run", died_at is None and greetd.alive(),
                       "died after %d cases" % died_at if died_at else "pid %d" % greetd.proc.pid))

    alive = greetd is None or greetd.alive()
    value = None
    if alive:
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            try:
                value = in_flight(host, port)
            except OSError:
                value = None
            if value == 0:
                break
            time.sleep(0.2)
    waited = 5.0 - max(0.0, end - time.monotonic()) if alive else 0
    checks.append((f"/metrics {greetd_format.REQUESTS_IN_FLIGHT} 0 within 5s", value == 0,
                   "in_flight %s after %.1fs" % (value, waited)))

    status, body = (None, b"")
    if alive:
        try:
            status, body = http_get(host, port, "/?delay=0s")
        except OSError as e:
            body = repr(e).encode()
    checks.append(("GET /?delay=0s answers 200 Hello Gopher!", status == 200 and body == b"Hello Gopher!\n",
                   "%s %r" % (status, body[:60])))

    if greetd:
        code = greetd.stop()
        checks.append(("greetd exits 0 on SIGTERM", code == 0, "exit status %s" % code))
        log = greetd.log_text()
        bad = [line for line in log.splitlines() if re.search(r"Fatal error|Sanitizer|panic|precondition|assert| critical |illegal", line)]
        checks.append(("greetd log free of fatal errors", not bad, "%d suspicious lines" % len(bad) if bad else
                       "%d log lines at --log-level warning" % len(log.splitlines())))
        levels = collections.Counter(m.group(1) for m in re.finditer(r"^\S+Z (\w+) ", log, re.M))
        if levels:
            print()
            print("greetd log (warning and above): " + ", ".join("%s %d" % kv for kv in sorted(levels.items())))
            for line in log.splitlines()[:8]:
                print("  " + line[:200])
        for line in bad[:10]:
            print("  ! " + line[:300])

    print()
    ok = True
    for name, passed, detail in checks:
        ok = ok and passed
        print("%s  %s (%s)" % ("PASS" if passed else "FAIL", name, detail))
    print("netfuzz: %s (seed %d)" % ("ok" if ok else "FAILED", seed))
    return 0 if ok else 1


STARTED = []  # the greetd this run started: never left running, whatever happens


def run():
    try:
        return main()
    except KeyboardInterrupt:
        print("netfuzz: interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output closed early (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        for greetd in STARTED:
            if greetd.alive():
                greetd.proc.kill()
                greetd.proc.wait()


if __name__ == "__main__":
    sys.exit(run())
