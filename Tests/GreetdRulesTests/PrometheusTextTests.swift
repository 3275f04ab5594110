import GreetdRules
import Testing

@Suite("Prometheus text")
struct PrometheusTextTests {
    /// What swift-prometheus renders for greetd, in part.
    static let exposition = """
        # HELP greetd_requests_total Greeting requests by how they ended.
        # TYPE greetd_requests_total counter
        greetd_requests_total{outcome="completed"} 3
        greetd_requests_total{outcome="canceled"} 0
        # TYPE greetd_request_duration_seconds histogram
        greetd_request_duration_seconds_bucket{outcome="completed",le="0.001"} 1
        greetd_request_duration_seconds_bucket{outcome="completed",le="+Inf"} 3
        greetd_request_duration_seconds_sum{outcome="completed"} 1.5e-03
        greetd_requests_in_flight 2.0
        process_start_time_seconds 1764067730.25
        greetd_build_info{version="0.9.0"} 1

        """

    @Test("samples: names, labels and values, comments and blank lines skipped")
    func samples() {
        let samples = PrometheusText.samples(in: Self.exposition)
        #expect(samples.count == 8)
        #expect(samples.first == PrometheusSample(name: "greetd_requests_total", labels: ["outcome": "completed"], value: 3))
        #expect(samples[3] == PrometheusSample(
            name: "greetd_request_duration_seconds_bucket", labels: ["outcome": "completed", "le": "+Inf"], value: 3))
        #expect(samples.last == PrometheusSample(name: "greetd_build_info", labels: ["version": "0.9.0"], value: 1))
    }

    @Test("value(of:labels:) matches the label set exactly")
    func lookup() {
        let samples = PrometheusText.samples(in: Self.exposition)
        #expect(samples.value(of: "greetd_requests_total", labels: ["outcome": "completed"]) == 3)
        #expect(samples.value(of: "greetd_requests_total", labels: ["outcome": "canceled"]) == 0)
        #expect(samples.value(of: "greetd_requests_total") == nil, "no unlabelled series")
        #expect(samples.value(of: "greetd_requests_total", labels: ["outcome": "shutdown"]) == nil)
        #expect(samples.value(of: "greetd_request_duration_seconds_sum", labels: ["outcome": "completed"]) == 0.0015)
        #expect(samples.value(of: "greetd_requests_in_flight") == 2)
        #expect(samples.value(of: "process_start_time_seconds") == 1_764_067_730.25)
        #expect(PrometheusText.value(of: "greetd_build_info", labels: ["version": "0.9.0"], in: Self.exposition) == 1)
        #expect(PrometheusText.value(of: "greetd_requests", in: Self.exposition) == nil, "a prefix is not a name")
    }

    @Test("escaped label values, special values, timestamps, CRLF")
    func edges() {
        let text = "a{path=\"C:\\\\x \\\"q\\\"\\nz\", b=\"{}, =\"} +Inf 1700000000000\r\nb -Inf\nc NaN\nd 0x10\ne inf\nf 1 2 3\n"
        let samples = PrometheusText.samples(in: text)
        #expect(samples.map(\.name) == ["a", "b", "c"])
        #expect(samples.first?.labels == ["path": "C:\\x \"q\"\nz", "b": "{}, ="])
        #expect(samples.first?.value == .infinity)
        #expect(samples.value(of: "b") == -.infinity)
        #expect(samples.value(of: "c")?.isNaN == true)
    }

    @Test("malformed lines are skipped, never trap", arguments: [
        "", "#", "{a=\"b\"} 1", "x{a=\"b} 1", "x{a=b} 1", "x{a=\"b\"", "x{a=\"b\"}", "x{a=\"b\"}1", "x", "x ", "x one",
        "x{=\"b\"} 1", "x{a=\"b\\", "HTTP/1.1 200 OK", "Content-Length: 12",
    ])
    func malformed(_ line: String) {
        #expect(PrometheusText.samples(in: line).isEmpty, "\(line.debugDescription)")
    }
}
