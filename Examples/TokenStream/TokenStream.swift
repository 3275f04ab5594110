import ArgumentParser
import EventHTTP
import EventHTTPDuration
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// `token-stream`: a fake text-generation service in OpenAI's completions wire format, where
/// every token costs one loop-timer interval, so a generation nobody waits for any more is
/// visible work to stop.
@main
struct TokenStream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token-stream",
        abstract: "A fake completions service (OpenAI's wire format) whose tokens stop when the client leaves."
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "Event loops (threads), 1 to 256. Default: the processors online.")
    var workers = EventHTTPServer.defaultLoops

    @Option(help: "Time each token takes (20ms, 1s).")
    var tokenInterval = "50ms"

    @Option(help: "Interval between `: keep-alive` comments on a stream; 0 for none.")
    var heartbeat = "0"

    @Option(help: "Largest request body, in bytes.")
    var maxBodyBytes = 1_048_576

    @Option(help: "How long in-flight generations may finish after SIGTERM or SIGINT.")
    var shutdownGrace = "10s"

    func validate() throws {
        guard !host.isEmpty else { throw ValidationError("--host must not be empty") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, got \(port)") }
        guard (1...256).contains(workers) else { throw ValidationError("--workers must be between 1 and 256, got \(workers)") }
        guard maxBodyBytes >= 1 else { throw ValidationError("--max-body-bytes must be at least 1, got \(maxBodyBytes)") }
        _ = try Self.duration(tokenInterval, flag: "--token-interval", zeroAllowed: false)
        _ = try Self.duration(heartbeat, flag: "--heartbeat", zeroAllowed: true)
        _ = try Self.duration(shutdownGrace, flag: "--shutdown-grace", zeroAllowed: true)
    }

    /// A flag's duration in greetd's syntax; a `ValidationError` (exit 64) when it is not one,
    /// is negative, or is zero where zero means nothing.
    static func duration(_ text: String, flag: String, zeroAllowed: Bool) throws -> Duration {
        let parsed: GoDuration
        do {
            parsed = try GoDuration(parsing: text)
        } catch {
            throw ValidationError("\(flag): \(error)")
        }
        if parsed < .zero { throw ValidationError("\(flag) must not be negative, got \(text)") }
        if parsed == .zero && !zeroAllowed { throw ValidationError("\(flag) must be greater than zero, got \(text)") }
        return parsed.duration
    }

    func run() async throws {
        // Logs go to stderr: stdout stays free, and tests read the `listening on` line there.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "token-stream")

        let registry = PrometheusCollectorRegistry()
        // The library's MetricsMiddleware reports through swift-metrics; send that to the same
        // registry so /metrics shows the request counts next to the generation counts.
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let metrics = GenerationMetrics(registry: registry)

        let settings = Generator.Settings(
            tokenInterval: try Self.duration(tokenInterval, flag: "--token-interval", zeroAllowed: false),
            heartbeat: try Self.duration(heartbeat, flag: "--heartbeat", zeroAllowed: true),
            maxBodyBytes: maxBodyBytes
        )
        let router = Router()
        router.add(middleware: MetricsMiddleware())
        Generator(settings: settings, metrics: metrics).register(on: router)
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(bytes: registry.emitToBuffer()))
        }

        var configuration = EventHTTPServer.Configuration(
            host: host, port: UInt16(port), loops: workers, requestIDs: .generate,
            errorRenderer: OpenAIError.renderer,
            shutdownGrace: try Self.duration(shutdownGrace, flag: "--shutdown-grace", zeroAllowed: true),
            cancellationGrace: .seconds(1)
        )
        // The handler checks the body size itself, after the content type (415 comes before
        // 413). The transport still refuses far bigger bodies before reading them: the same
        // 413, through the same renderer, without buffering them.
        configuration.maxBodyBytes = maxBodyBytes > Int.max / 2 ? Int.max : max(maxBodyBytes * 2, maxBodyBytes + 1_048_576)

        let host = self.host
        let server = EventHTTPServer(configuration: configuration, router: router, logger: logger) { addresses in
            let port = addresses.first?.port ?? 0
            let shown = host.contains(":") ? "[\(host)]" : host
            logger.info("listening on http://\(shown):\(port)")
        }

        // The first SIGTERM or SIGINT starts the graceful shutdown; the server itself turns a
        // second one into an immediate cancellation (`Configuration.escalationSignals`).
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        do {
            try await group.run()
        } catch let error as EventHTTPServerError {
            logger.error("cannot listen on \(error.address): \(error.message)")
            throw ExitCode(1)
        }
        logger.info("stopped")
    }
}

/// The counters `/metrics` shows, each series there from the start at 0.
struct GenerationMetrics: Sendable {
    /// Every token generated, by any request.
    let tokens: Prometheus.Counter
    /// Generations that sent their last token.
    let completed: Prometheus.Counter
    /// Generations whose client left first.
    let canceled: Prometheus.Counter
    /// Generations ended by the server's shutdown.
    let shutdown: Prometheus.Counter

    init(registry: PrometheusCollectorRegistry) {
        tokens = registry.makeCounter(descriptor: .init(metricName: "tokens_generated", unitName: "total",
                                                        helpText: "Tokens generated."))
        let generations = MetricNameDescriptor(metricName: "generations", unitName: "total",
                                               helpText: "Generations by how they ended.")
        completed = registry.makeCounter(descriptor: generations, labels: [("outcome", "completed")])
        canceled = registry.makeCounter(descriptor: generations, labels: [("outcome", "canceled")])
        shutdown = registry.makeCounter(descriptor: generations, labels: [("outcome", "shutdown")])
    }
}
