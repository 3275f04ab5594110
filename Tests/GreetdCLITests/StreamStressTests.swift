import Foundation
import TestSupport
import Testing

/// `greet-stress --stream` against a real `greetd`: the clients ask for the streaming greeting,
/// read its events while they wait, and then abort mid-stream (or read it to its end); greetd's
/// `/metrics` must account for every one of them exactly as for the plain greeting.
@Suite("greet-stress --stream against greetd", .serialized)
struct StreamStressTests {
    /// greetd on a free port with a short tick, so that streams carry events before they abort.
    private static func startGreetd(tick: String) throws -> (GreetdProcess, UInt16) {
        let greetd = try GreetdProcess(["--host", "127.0.0.1", "--port", "0", "--tick", tick, "--log-level", "info"])
        return (greetd, try greetd.listeningPort())
    }

    /// The run's JSON summary.
    private static func summary(_ run: StressRun) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any],
                     "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
    }

    @Test("200 streams aborted mid-stream (FIN, RST, half-close) after their first events: all canceled, in-flight back, exit 0")
    func abortMidStream() throws {
        let (greetd, port) = try Self.startGreetd(tick: "50ms")
        let run = try StressRun(["--port", "\(port)", "--stream", "--requests", "200", "--connections", "100",
                                 "--abort-after", "200ms-600ms", "--path", "/?delay=10s", "--complete-fraction", "0",
                                 "--duration", "20s", "--json"])
        #expect(run.status == 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let object = try Self.summary(run)
        #expect(object["aborted"] as? Int == 200)
        #expect((object["errors"] as? [String: Int])?.isEmpty == true, "\(run.stdout)")
        let events = try #require(object["events"] as? [String: Int], "\(run.stdout)")
        #expect((events["thinking"] ?? 0) > 0, "no thinking event arrived before the aborts: \(run.stdout)")
        #expect(events["greeting"] == nil && events["error"] == nil, "\(events)")
        let checks = try #require(object["checks"] as? [[String: Any]])
        for name in ["canceled delta == aborted", "in-flight back to start (5s)"] {
            let check = try #require(checks.first { $0["name"] as? String == name }, "no check \(name): \(run.stdout)")
            #expect(check["ok"] as? Bool == true, "\(check)")
        }
        // Each aborted stream logged its cancel, with no tick after it.
        try greetd.waitForLine(containing: "[request_id=stress-200] Context Error: context canceled")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("30% of the streams run to their end: each ends with a greeting event after delay/tick thinking events")
    func someComplete() throws {
        let (greetd, port) = try Self.startGreetd(tick: "100ms")
        let run = try StressRun(["--port", "\(port)", "--stream", "--requests", "200", "--connections", "100",
                                 "--complete-fraction", "0.3", "--path", "/?delay=300ms", "--abort-after", "20ms-60ms",
                                 "--duration", "20s", "--json"])
        #expect(run.status == 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let object = try Self.summary(run)
        #expect(object["completed"] as? Int == 60)
        #expect(object["aborted"] as? Int == 140)
        let events = try #require(object["events"] as? [String: Int], "\(run.stdout)")
        #expect(events["greeting"] == 60, "\(events)")
        // 300ms at a 100ms tick: 3 thinking events before each greeting (aborted streams may add some).
        #expect((events["thinking"] ?? 0) >= 180, "\(events)")
        #expect(object["ok"] as? Bool == true, "\(run.stdout)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }

    @Test("a deadline ends every stream with an error event: counted as errors by name, exit 1")
    func deadline() throws {
        let (greetd, port) = try Self.startGreetd(tick: "50ms")
        let run = try StressRun(["--port", "\(port)", "--stream", "--requests", "20", "--connections", "20",
                                 "--complete-fraction", "1", "--path", "/?delay=5s&timeout=200ms", "--duration", "20s", "--json"])
        #expect(run.status == 1, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let object = try Self.summary(run)
        #expect(object["errors"] as? [String: Int] == ["stream_error: context deadline exceeded": 20], "\(run.stdout)")
        #expect((object["events"] as? [String: Int])?["error"] == 20, "\(run.stdout)")
        let checks = try #require(object["checks"] as? [[String: Any]])
        let canceled = try #require(checks.first { $0["name"] as? String == "canceled delta == aborted" })
        #expect(canceled["ok"] as? Bool == true, "\(canceled)")
        greetd.signal(SIGTERM)
        #expect(try greetd.waitForExit() == 0)
    }
}
