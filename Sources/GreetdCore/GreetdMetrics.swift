import Metrics
import Prometheus
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a request ended, for `greetd_requests_total{outcome=...}` and the duration histogram.
public enum RequestOutcome: String, CaseIterable, Sendable {
    /// The greeting answered `200 Hello Gopher!`.
    case completed
    /// The client went away first (access log status 499).
    case canceled
    /// The request's deadline (`--timeout`, `?timeout=`) passed first: `503`.
    case deadlineExceeded = "deadline_exceeded"
    /// The shutdown budget ran out first: `503` with `Connection: close`.
    case shutdown
    /// Refused without work: over `--max-connections`, or arriving while draining.
    case rejected
}

/// greetd's metrics, through swift-metrics into one Prometheus registry shared by every worker
/// loop, so that the numbers add up across workers.
///
/// Sendable: swift-metrics handles are thread-safe (swift-prometheus backs them with atomics and
/// locks), and every stored property is immutable.
public final class GreetdMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let requests: [RequestOutcome: Metrics.Counter]
    private let durations: [RequestOutcome: Metrics.Timer]
    let inFlight: Metrics.Meter
    let connectionsOpen: Metrics.Meter
    let ticks: Metrics.Counter
    /// `accept` failures (out of descriptors, mostly); the listener pauses after each.
    let acceptErrors: Metrics.Counter
    private let residentMemory: Metrics.Gauge
    private let openFDs: Metrics.Gauge

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["greetd_request_duration_seconds"] = [
            .milliseconds(1), .milliseconds(10), .milliseconds(100), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        var requests: [RequestOutcome: Metrics.Counter] = [:]
        var durations: [RequestOutcome: Metrics.Timer] = [:]
        for outcome in RequestOutcome.allCases {
            let dimensions = [("outcome", outcome.rawValue)]
            requests[outcome] = Metrics.Counter(label: "greetd_requests_total", dimensions: dimensions, factory: factory)
            durations[outcome] = Metrics.Timer(label: "greetd_request_duration_seconds", dimensions: dimensions, factory: factory)
        }
        self.requests = requests
        self.durations = durations
        inFlight = Metrics.Meter(label: "greetd_requests_in_flight", factory: factory)
        connectionsOpen = Metrics.Meter(label: "greetd_connections_open", factory: factory)
        ticks = Metrics.Counter(label: "greetd_timer_ticks_total", factory: factory)
        acceptErrors = Metrics.Counter(label: "greetd_accept_errors_total", factory: factory)
        residentMemory = Metrics.Gauge(label: "process_resident_memory_bytes", factory: factory)
        openFDs = Metrics.Gauge(label: "process_open_fds", factory: factory)
    }

    /// Counts a finished request and records how long it took.
    func finished(_ outcome: RequestOutcome, after duration: Duration) {
        requests[outcome]!.increment()
        let (seconds, attoseconds) = duration.components
        durations[outcome]!.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Counts a request refused without a duration worth recording (a connection over the limit).
    func rejected() {
        requests[.rejected]!.increment()
    }

    /// The Prometheus text exposition, with the process gauges read now.
    public func render() -> String {
        if let rss = residentMemoryBytes() { residentMemory.record(rss) }
        if let fds = openFileDescriptors() { openFDs.record(fds) }
        return registry.emitToString()
    }
}

/// Resident set size from `/proc/self/statm` (pages × page size); `nil` off Linux.
func residentMemoryBytes() -> Int? {
    guard let file = fopen("/proc/self/statm", "r") else { return nil }
    defer { fclose(file) }
    var size = 0, resident = 0
    guard fscanf_statm(file, &size, &resident) else { return nil }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}

private func fscanf_statm(_ file: UnsafeMutablePointer<FILE>, _ size: inout Int, _ resident: inout Int) -> Bool {
    var line = [CChar](repeating: 0, count: 256)
    guard fgets(&line, Int32(line.count), file) != nil else { return false }
    let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
    guard fields.count >= 2, let s = Int(fields[0]), let r = Int(fields[1]) else { return false }
    size = s
    resident = r
    return true
}

/// Open descriptors, counted in `/proc/self/fd`; `nil` where that does not exist.
func openFileDescriptors() -> Int? {
    guard let directory = opendir("/proc/self/fd") else { return nil }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
        let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
        if first != UInt8(ascii: ".") { count += 1 }
    }
    return count - 1  // the descriptor opendir itself holds
}
