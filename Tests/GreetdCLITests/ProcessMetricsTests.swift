import Foundation
import GreetdRules
import TestSupport
import Testing

/// greetd's `process_*` metrics where `/proc` is partly hidden, as the systemd unit hides it.
@Suite("greetd process metrics")
struct ProcessMetricsTests {
    static let unshare = ["/usr/bin/unshare", "/bin/unshare"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Whether this machine lets a process make its own user and mount namespaces (unprivileged
    /// user namespaces may be turned off, and containers may forbid them).
    static let canHideProcStat: Bool = {
        guard let unshare else { return false }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: unshare)
        probe.arguments = ["-rm", "sh", "-c", "mount --bind /dev/null /proc/stat"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil, probe.exits(within: 10) else { return false }
        return probe.terminationStatus == 0
    }()

    /// deploy/greetd-http.service sets `ProcSubset=pid`, which hides `/proc/stat` and its boot
    /// time. greetd runs here with `/proc/stat` emptied (a bind mount of /dev/null in a mount
    /// namespace of its own): `process_start_time_seconds` must still be a time near now, not 0.
    @Test("process_start_time_seconds is near now, not 0, when /proc/stat is hidden",
          .enabled(if: canHideProcStat, "unshare cannot make user and mount namespaces here"))
    func startTimeWithoutProcStat() throws {
        let launched = Date().timeIntervalSince1970
        // `exec "$0" "$@"` runs greetd only once the mount has succeeded.
        let greetd = try GreetdProcess(
            ["-rm", "sh", "-c", #"mount --bind /dev/null /proc/stat && exec "$0" "$@""#, GreetdProcess.binary.path,
             "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--tick", "10s"],
            executable: URL(fileURLWithPath: Self.unshare!))
        let port = try greetd.listeningPort()
        let text = try rawExchange(port: port, "GET /metrics HTTP/1.0\r\n\r\n")
        let started = try #require(PrometheusText.value(of: MetricName.processStartTime, in: text), "\(text)")
        let now = Date().timeIntervalSince1970
        // A day's slack either way: the point is "not 1970", not a bound on how fast greetd starts.
        #expect(started > launched - 86_400 && started < now + 86_400, "start time \(started), launched at \(launched)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }
}
