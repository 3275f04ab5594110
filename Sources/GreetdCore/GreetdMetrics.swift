import EventHTTPSystem
import EventHTTPCore
import Prometheus
import Synchronization

/// How a request ended, for `greetd_requests_total{outcome=...}` and the duration histogram:
/// the one definition in GreetdRules, which greet-stress and the Python tools share.
public typealias RequestOutcome = MetricName.Outcome

/// greetd's metrics, in one Prometheus registry shared by every worker loop, so that the numbers
/// add up across workers. Every metric has a `# HELP` line.
///
/// Written by the `RequestRecorder` of each worker; rendered by `/metrics`.
///
/// Sendable: swift-prometheus metrics are thread-safe (atomics and locks), every stored property
/// is immutable, and the CPU time last reported sits behind a mutex.
public final class GreetdMetrics: Sendable {
    /// The version `greetd_build_info` reports.
    public static let version = greetdVersion

    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    /// Per outcome, at ``slot(_:)``: arrays indexed by a switch, not dictionaries, so counting a
    /// request hashes nothing (the outcome's raw value is a String).
    private let requests: [Counter]
    /// `greetd_request_duration_seconds`, by outcome: counted per worker (each recorder makes
    /// its own series, ``RequestRecorder``), added up at render.
    let requestDurations: HistogramFamily
    let inFlight: Gauge
    let connectionsOpen: Gauge
    let ticks: Counter
    /// `accept` failures (out of descriptors, mostly); the listener pauses after each.
    let acceptErrors: Counter
    private let residentMemory: Gauge
    private let openFDs: Gauge
    private let cpuSeconds: Counter
    private let cpuReported = Lock<Double>(0)
    /// Per close reason, in `ConnectionCloseReason.allCases` order.
    private let connectionsClosed: [Counter]
    /// OpenTelemetry's `http_server_request_duration_seconds`, per (method, status, route) as
    /// each worker first meets it; counted per worker, added up at render.
    let httpDurations = HistogramFamily(
        name: MetricName.httpRequestDuration,
        help: "Duration of HTTP server requests, every answer included (OpenTelemetry's http.server.request.duration).",
        buckets: httpBuckets)
    private static let httpBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let buckets: [Duration] = [
            .milliseconds(1), .milliseconds(10), .milliseconds(100), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        requestDurations = HistogramFamily(name: MetricName.requestDuration,
                                           help: "Time from a request's arrival to its end, by outcome.", buckets: buckets)
        let requestsName = metric(
            MetricName.requests,
            "Greeting requests by how they ended: completed, canceled (client gone), deadline_exceeded, shutdown, rejected (connection limit or draining), dropped (the server dropped the connection: pipeline limit, timeout).")
        var requests: [Counter] = []
        for (slot, outcome) in RequestOutcome.allCases.enumerated() {
            precondition(Self.slot(outcome) == slot, "slot(_:) must follow RequestOutcome.allCases")
            let labels = [(MetricName.outcomeLabel, outcome.rawValue)]
            requests.append(registry.makeCounter(descriptor: requestsName, labels: labels))
        }
        self.requests = requests
        inFlight = registry.makeGauge(descriptor: metric(MetricName.requestsInFlight, "Greetings thinking right now."))
        connectionsOpen = registry.makeGauge(descriptor: metric(MetricName.connectionsOpen, "Client connections open right now."))
        ticks = registry.makeCounter(descriptor: metric(MetricName.timerTicks, "'Greetings are hard. Thinking...' lines logged."))
        acceptErrors = registry.makeCounter(descriptor: metric(
            MetricName.acceptErrors, "Failed accept calls (out of descriptors, mostly); the listener pauses after each."))
        residentMemory = registry.makeGauge(descriptor: metric(MetricName.residentMemory, "Resident memory size in bytes."))
        openFDs = registry.makeGauge(descriptor: metric(MetricName.openFileDescriptors, "Number of open file descriptors."))
        cpuSeconds = registry.makeCounter(descriptor: metric(MetricName.processCPUSeconds, "Total user and system CPU time spent in seconds."))
        let closedName = metric(
            MetricName.connectionsClosed,
            "Client connections closed, by reason: client, done (after an answer that closes), header_timeout, idle_timeout, pipeline_limit, max_connections, bad_request, shutdown.")
        connectionsClosed = ConnectionCloseReason.allCases.map {
            registry.makeCounter(descriptor: closedName, labels: [(MetricName.reasonLabel, $0.rawValue)])
        }
        let start = registry.makeGauge(descriptor: metric(MetricName.processStartTime, "Start time of the process since unix epoch in seconds."))
        start.set(to: ProcessStats.startTimeSeconds)
        registry.makeGauge(descriptor: metric(MetricName.buildInfo, "A constant 1, labelled with the greetd version."),
                           labels: [(MetricName.versionLabel, Self.version)]).set(to: 1)
        // Every outcome's series is shown from the start, at 0 (a worker adds its own as it starts).
        _ = makeOutcomeHistograms()
    }

    /// Counts a finished request (its recorder records how long it took).
    func finished(_ outcome: RequestOutcome) {
        requests[Self.slot(outcome)].increment()
    }

    /// One worker's histograms of ``requestDurations``, one per outcome, at ``slot(_:)``.
    func makeOutcomeHistograms() -> [WorkerHistogram] {
        RequestOutcome.allCases.enumerated().map { slot, outcome in
            requestDurations.makeHistogram(key: slot) { [(MetricName.outcomeLabel, outcome.rawValue)] }
        }
    }

    /// Counts a closed connection.
    func connectionClosed(_ reason: ConnectionCloseReason) {
        let index = ConnectionCloseReason.allCases.firstIndex(of: reason)!
        connectionsClosed[index].increment()
    }

    /// Counts a request refused without a duration worth recording (a connection over the limit).
    func rejected() {
        requests[Self.slot(.rejected)].increment()
    }

    /// `outcome`'s position in `RequestOutcome.allCases` (checked at init), by a switch.
    @inline(__always)
    static func slot(_ outcome: RequestOutcome) -> Int {
        switch outcome {
        case .completed: return 0
        case .canceled: return 1
        case .deadlineExceeded: return 2
        case .shutdown: return 3
        case .rejected: return 4
        case .dropped: return 5
        }
    }

    /// The Prometheus text exposition, with the process metrics read now.
    public func render() -> String {
        if let rss = ProcessStats.residentMemoryBytes() { residentMemory.set(to: Double(rss)) }
        if let fds = ProcessStats.openFileDescriptors() { openFDs.set(to: Double(fds)) }
        let cpu = ProcessStats.cpuSeconds()
        cpuReported.withLock { reported in
            if cpu > reported {
                cpuSeconds.increment(by: cpu - reported)
                reported = cpu
            }
        }
        var text = registry.emitToString()
        requestDurations.render(into: &text)
        httpDurations.render(into: &text)
        return text
    }
}

/// A metric's full name and its `# HELP` text (swift-prometheus joins the name's parts, and
/// skips the empty unit).
private func metric(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
}
