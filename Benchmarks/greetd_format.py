"""greetd's log-line format and metric names, for the Python tools.

One definition shared by Benchmarks/run.py, Benchmarks/cancel-latency.py and scripts/netfuzz.py.
It mirrors the Swift one in Sources/GreetdRules (LogLineFormat.swift, LogLineParser.swift,
MetricNames.swift); Tests/GreetdRulesTests/PythonMirrorTests.swift checks that both name the same
metrics. `python3 Benchmarks/greetd_format.py` runs this module's self-test.

A log line (UTC, microseconds; `<N>` is the sd-daemon priority greetd adds under systemd, where
the line drops its own timestamp because journald stamps it):

    [<6>]2026-11-25T10:48:50.123456Z info [request_id=7f3a9c21-17] Greetings are hard. Thinking...
    <6>info [request_id=7f3a9c21-17] Greetings are hard. Thinking...

`--log-format json` lines are JSON objects (`time`, `level`, `msg`, `request_id`, ...): read them
with json.loads.

Fields follow the message as ` key=value`; a value with spaces, quotes or control bytes is
Go-quoted (`target="/x y"`). An access line: `access method=GET target=/ status=200
duration=1.2ms bytes=14 remote=127.0.0.1:5555 proto=HTTP/1.1 user_agent="curl/8.5.0"`.
"""
import collections
import datetime
import re

# -- metric names (MetricName in Swift) ----------------------------------------------------------

REQUESTS = "greetd_requests_total"
REQUEST_DURATION = "greetd_request_duration_seconds"
REQUESTS_IN_FLIGHT = "greetd_requests_in_flight"
CONNECTIONS_OPEN = "greetd_connections_open"
TIMER_TICKS = "greetd_timer_ticks_total"
ACCEPT_ERRORS = "greetd_accept_errors_total"
RESIDENT_MEMORY = "process_resident_memory_bytes"
OPEN_FDS = "process_open_fds"
PROCESS_CPU_SECONDS = "process_cpu_seconds_total"
PROCESS_START_TIME = "process_start_time_seconds"
BUILD_INFO = "greetd_build_info"
VERSION_LABEL = "version"
OUTCOME_LABEL = "outcome"
CONNECTIONS_CLOSED = "greetd_connections_closed_total"
REASON_LABEL = "reason"
HTTP_REQUEST_DURATION = "http_server_request_duration_seconds"
# The values of the `outcome` label (MetricName.Outcome in Swift).
OUTCOMES = ("completed", "canceled", "deadline_exceeded", "shutdown", "rejected", "dropped")

# -- log lines ------------------------------------------------------------------------------------

LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical")
LOG_LINE = re.compile(
    r"^(?:<(?P<priority>[0-7])>)?"
    r"(?:(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) |(?<=>))"
    r"(?P<level>" + "|".join(LEVELS) + r") "
    r"(?:\[request_id=(?P<request_id>.*?)\] )?"
    r"(?P<message>.*)$")

LogLine = collections.namedtuple("LogLine", "priority time level request_id message")


def parse_line(text):
    """A LogLine (priority int or None, time str or None, level, request_id or None, message), or None.
    The time is None only on a journald line (one with a priority), which has none."""
    m = LOG_LINE.match(text.rstrip("\n"))
    if not m:
        return None
    priority = int(m.group("priority")) if m.group("priority") else None
    return LogLine(priority, m.group("time"), m.group("level"), m.group("request_id"), m.group("message"))


def parse_time_ns(stamp):
    """`2026-11-25T10:48:50.123456Z` -> nanoseconds since the epoch."""
    dt = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


_FIELD = re.compile(r'(?:^| )([^ =]+)=("(?:[^"\\]|\\.)*"|[^ ]*)')


def field(message, key):
    """The value of the first ` key=value` field of a message (Go-quoted values unquoted), or None.
    A field inside a quoted value is not a field."""
    for m in _FIELD.finditer(message):
        if m.group(1) == key:
            value = m.group(2)
            if value.startswith('"'):
                return _unquote(value[1:-1])
            return value
    return None


def _unquote(body):
    out = bytearray()
    i = 0
    raw = body.encode()
    while i < len(raw):
        c = raw[i]
        if c == 0x5C and i + 1 < len(raw):  # backslash
            if raw[i + 1] == ord("x") and i + 3 < len(raw):
                out.append(int(raw[i + 2:i + 4], 16))
                i += 4
                continue
            out.append(raw[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return out.decode(errors="replace")


# -- Prometheus text ------------------------------------------------------------------------------

def metric_value(body, name, **labels):
    """The value of the first sample of `name` whose labels include `labels`, from Prometheus text
    (str or bytes), or None."""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    sample = re.compile(r"^" + re.escape(name) + r"(?:\{(?P<labels>[^}]*)\})? (?P<value>[0-9.eE+-]+|NaN|[+-]Inf)", re.M)
    for m in sample.finditer(body):
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group("labels") or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group("value"))
    return None


def _selftest():
    line = parse_line("<5>2026-11-25T10:48:50.123456Z notice [request_id=stress-3] Context Error: context canceled\n")
    assert line == LogLine(5, "2026-11-25T10:48:50.123456Z", "notice", "stress-3", "Context Error: context canceled"), line
    assert parse_time_ns(line.time) == 1_795_603_730_123_456_000
    plain = parse_line("2026-11-25T10:48:50.000000Z info Server listening")
    assert plain.request_id is None and plain.priority is None and plain.message == "Server listening"
    journal = parse_line("<6>info [request_id=ab12cd34-9] access method=GET target=/ status=200")
    assert journal == LogLine(6, None, "info", "ab12cd34-9", "access method=GET target=/ status=200"), journal
    assert parse_line("info Server listening") is None
    journal = parse_line("<6>info [request_id=ab12cd34-9] access method=GET target=/ status=200")
    assert journal == LogLine(6, None, "info", "ab12cd34-9", "access method=GET target=/ status=200"), journal
    assert parse_line("info Server listening") is None
    assert parse_line("hello") is None and parse_line("2026-11-25T10:48:50.000000Z loud x") is None
    access = 'access method=GET target="/x status=200 \\"q\\"\\x1b" status=404 duration=1.5ms bytes=19'
    assert field(access, "target") == '/x status=200 "q"\x1b', field(access, "target")
    assert field(access, "status") == "404" and field(access, "duration") == "1.5ms" and field(access, "nope") is None
    text = b'# HELP x\ngreetd_requests_total{outcome="canceled"} 3\ngreetd_requests_total{outcome="completed"} 4.0\n' \
           b'greetd_requests_in_flight 0\n'
    assert metric_value(text, REQUESTS, outcome="completed") == 4.0
    assert metric_value(text, REQUESTS, outcome="canceled") == 3.0
    assert metric_value(text, REQUESTS_IN_FLIGHT) == 0.0
    assert metric_value(text, TIMER_TICKS) is None
    print("greetd_format: ok")


if __name__ == "__main__":
    _selftest()
