// greetd's metric names and label values: one definition for the server (GreetdMetrics), the
// client that checks them (greet-stress) and, mirrored in Benchmarks/greetd_format.py (a test
// compares the two), the Python tools.

/// The names of greetd's Prometheus series, as `/metrics` shows them.
public enum MetricName {
    /// Counter of finished requests, by ``outcomeLabel`` (values: ``Outcome``).
    public static let requests = "greetd_requests_total"
    /// Histogram of request durations in seconds, by ``outcomeLabel``.
    public static let requestDuration = "greetd_request_duration_seconds"
    /// Gauge of greetings in flight (started, not yet ended).
    public static let requestsInFlight = "greetd_requests_in_flight"
    /// Gauge of open client connections.
    public static let connectionsOpen = "greetd_connections_open"
    /// Counter of `Greetings are hard. Thinking...` ticks logged.
    public static let timerTicks = "greetd_timer_ticks_total"
    /// Counter of failed `accept` calls (out of descriptors, mostly); the listener pauses after each.
    public static let acceptErrors = "greetd_accept_errors_total"
    /// Gauge of the process's resident memory, in bytes.
    public static let residentMemory = "process_resident_memory_bytes"
    /// Gauge of the process's open file descriptors.
    public static let openFileDescriptors = "process_open_fds"
    /// Counter of the process's user plus system CPU time, in seconds.
    public static let processCPUSeconds = "process_cpu_seconds_total"
    /// Gauge of when the process started, in seconds since 1970.
    public static let processStartTime = "process_start_time_seconds"
    /// Gauge, a constant 1, labelled with greetd's version (``versionLabel``).
    public static let buildInfo = "greetd_build_info"
    /// The label of ``buildInfo`` that carries greetd's version.
    public static let versionLabel = "version"
    /// The label that splits ``requests`` and ``requestDuration`` by how a request ended.
    public static let outcomeLabel = "outcome"
    /// Counter of closed client connections, by ``reasonLabel`` (values: the transport's
    /// `ConnectionCloseReason`: `client`, `done`, `header_timeout`, `idle_timeout`,
    /// `pipeline_limit`, `max_connections`, `bad_request`, `shutdown`).
    public static let connectionsClosed = "greetd_connections_closed_total"
    /// The label of ``connectionsClosed``.
    public static let reasonLabel = "reason"
    /// OpenTelemetry's HTTP server histogram: every answer's duration, in seconds, by
    /// ``httpMethodLabel``, ``httpStatusLabel`` and ``httpRouteLabel``.
    public static let httpRequestDuration = "http_server_request_duration_seconds"
    /// The method (`GET`, ...; `_OTHER` for an unknown or unread one).
    public static let httpMethodLabel = "http_request_method"
    /// The status code sent.
    public static let httpStatusLabel = "http_response_status_code"
    /// The matched route's pattern (`/`, `/healthz`, `/metrics`); empty when none matched.
    public static let httpRouteLabel = "http_route"

    /// How a request ended: the values of the ``MetricName/outcomeLabel`` label.
    public enum Outcome: String, CaseIterable, Sendable {
        /// The greeting answered `200 Hello Gopher!`.
        case completed
        /// The client went away first (access-log status 499).
        case canceled
        /// The request's deadline (`--timeout`, `?timeout=`) passed first: `503`.
        case deadlineExceeded = "deadline_exceeded"
        /// The shutdown budget ran out first: `503` with `Connection: close`.
        case shutdown
        /// Refused without work: over `--max-connections`, or arriving while draining.
        case rejected
        /// The server dropped the connection under it (the pipeline limit, a read timeout):
        /// not the client's doing, so not `canceled`. Access-log status 444.
        case dropped
    }
}
