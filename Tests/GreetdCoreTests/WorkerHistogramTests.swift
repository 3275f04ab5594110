@testable import GreetdCore
import GreetdRules
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The per-worker histograms behind `/metrics`' two duration families: each worker writes its
/// own counts without a lock; a render adds them up in Prometheus's text format.
@Suite("Per-worker histograms")
struct WorkerHistogramTests {
    private func family() -> HistogramFamily {
        HistogramFamily(name: "t_seconds", help: "Test durations.", buckets: [.milliseconds(1), .milliseconds(10), .seconds(1)])
    }

    private func render(_ family: HistogramFamily) -> String {
        var text = ""
        family.render(into: &text)
        return text
    }

    @Test("buckets are cumulative, a bound is inclusive, _count is the +Inf bucket, _sum in seconds")
    func format() {
        let family = family()
        let histogram = family.makeHistogram(key: 1) { [("outcome", "completed")] }
        for duration: Duration in [.microseconds(500), .milliseconds(1), .milliseconds(5), .seconds(2)] {
            histogram.record(duration)
        }
        let text = render(family)
        #expect(text.hasPrefix("# HELP t_seconds Test durations.\n# TYPE t_seconds histogram\n"))
        let samples = PrometheusText.samples(in: text)
        func bucket(_ le: String) -> Double? { samples.value(of: "t_seconds_bucket", labels: ["outcome": "completed", "le": le]) }
        #expect(bucket("0.001") == 2, "500 µs and exactly 1 ms")
        #expect(bucket("0.01") == 3)
        #expect(bucket("1.0") == 3)
        #expect(bucket("+Inf") == 4)
        #expect(samples.value(of: "t_seconds_count", labels: ["outcome": "completed"]) == 4)
        let sum = samples.value(of: "t_seconds_sum", labels: ["outcome": "completed"]) ?? 0
        #expect(abs(sum - 2.0065) < 1e-9)
    }

    @Test("two workers' histograms of one series are added up; series keep their own labels")
    func workersAddUp() async throws {
        let family = family()
        let a = family.makeHistogram(key: 7) { [("route", "/")] }
        let b = family.makeHistogram(key: 7) { Issue.record("labels are read once per series"); return [] }
        let other = family.makeHistogram(key: 8) { [("route", "/say \"hi\"")] }
        // Each writer on its own thread, as each worker records on its loop.
        await withTaskGroup(of: Void.self) { group in
            for histogram in [a, b] {
                group.addTask { for _ in 0..<1_000 { histogram.record(.milliseconds(5)) } }
            }
        }
        other.record(.seconds(5))
        let text = render(family)
        let samples = PrometheusText.samples(in: text)
        #expect(samples.value(of: "t_seconds_count", labels: ["route": "/"]) == 2_000)
        #expect(samples.value(of: "t_seconds_bucket", labels: ["route": "/", "le": "0.001"]) == 0)
        #expect(samples.value(of: "t_seconds_bucket", labels: ["route": "/", "le": "0.01"]) == 2_000)
        #expect(text.contains(#"t_seconds_count{route="/say \"hi\""} 1"#), "label values are escaped")
    }

    @Test("a series no worker has recorded into is rendered at zero")
    func empty() {
        let family = family()
        _ = family.makeHistogram(key: 0) { [] }
        let text = render(family)
        #expect(text.contains("t_seconds_bucket{le=\"+Inf\"} 0\n"))
        #expect(text.contains("t_seconds_sum 0.0\nt_seconds_count 0\n"))
    }
}
