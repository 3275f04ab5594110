import Foundation
import GreetdRules
import Testing

/// The Python tools read greetd's metrics and log lines through Benchmarks/greetd_format.py; its
/// names must be the ones the server uses.
@Suite struct PythonMirrorTests {
    private static let source: String? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try? String(contentsOf: root.appendingPathComponent("Benchmarks/greetd_format.py"), encoding: .utf8)
    }()

    @Test("every metric name of MetricName appears, with the same value, in greetd_format.py")
    func metricNames() throws {
        let source = try #require(Self.source, "Benchmarks/greetd_format.py not found")
        let pairs = [
            ("REQUESTS", MetricName.requests), ("REQUEST_DURATION", MetricName.requestDuration),
            ("REQUESTS_IN_FLIGHT", MetricName.requestsInFlight), ("CONNECTIONS_OPEN", MetricName.connectionsOpen),
            ("TIMER_TICKS", MetricName.timerTicks), ("ACCEPT_ERRORS", MetricName.acceptErrors),
            ("RESIDENT_MEMORY", MetricName.residentMemory), ("OPEN_FDS", MetricName.openFileDescriptors),
            ("OUTCOME_LABEL", MetricName.outcomeLabel),
            ("PROCESS_CPU_SECONDS", MetricName.processCPUSeconds), ("PROCESS_START_TIME", MetricName.processStartTime),
            ("BUILD_INFO", MetricName.buildInfo), ("VERSION_LABEL", MetricName.versionLabel),
            ("CONNECTIONS_CLOSED", MetricName.connectionsClosed), ("REASON_LABEL", MetricName.reasonLabel),
            ("HTTP_REQUEST_DURATION", MetricName.httpRequestDuration),
        ]
        for (python, swift) in pairs {
            #expect(source.contains("\n\(python) = \"\(swift)\"\n"), "\(python) should be \"\(swift)\"")
        }
        let outcomes = MetricName.Outcome.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        #expect(source.contains("\nOUTCOMES = (\(outcomes))"), "OUTCOMES should be (\(outcomes))")
    }

    @Test("the Python levels are LogLevel's, in order")
    func levels() throws {
        let source = try #require(Self.source, "Benchmarks/greetd_format.py not found")
        let levels = LogLevel.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        #expect(source.contains("\nLEVELS = (\(levels))\n"))
    }
}
