import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Prometheus histogram family counted per worker, without a lock on the request path: each
/// worker records into its own ``WorkerHistogram`` per series (one writer each), and `/metrics`
/// adds the workers' counts up as it renders (``render(into:)``).
///
/// swift-prometheus's histogram takes a mutex per observation, shared by every worker; two of
/// them per request (the outcome's and OpenTelemetry's) cost about 2,000 instructions, a twenty-
/// fifth of a keep-alive request.
///
/// Sendable: the name, help and bounds are immutable; the series list sits behind a mutex (taken
/// when a worker first meets a series, and by each render).
final class HistogramFamily: Sendable {
    /// The family's name, e.g. `greetd_request_duration_seconds`.
    let name: String
    private let help: String
    /// Bucket upper bounds in nanoseconds, ascending (the `+Inf` bucket is implicit).
    let bounds: [Int64]
    /// The bounds as Prometheus writes them (`0.001`, `1.0`), then `+Inf`.
    private let boundLabels: [String]
    /// Every series met so far, in the order first met: its rendered labels and, per worker that
    /// recorded into it, that worker's histogram.
    private let series = Mutex<[(key: Int, labels: String, workers: [WorkerHistogram])]>([])

    init(name: String, help: String, buckets: [Duration]) {
        precondition(zip(buckets, buckets.dropFirst()).allSatisfy { $0 < $1 }, "histogram buckets must ascend")
        self.name = name
        self.help = help
        bounds = buckets.map { Self.nanoseconds($0) }
        boundLabels = buckets.map { "\(Self.seconds($0))" } + ["+Inf"]
    }

    /// A new histogram for one worker's observations of the series `key` (whose labels are
    /// `labels()`, read only the first time any worker meets the series). The caller (one
    /// worker's recorder) keeps it and is its only writer.
    func makeHistogram(key: Int, labels: () -> [(String, String)]) -> WorkerHistogram {
        let histogram = WorkerHistogram(bounds: bounds)
        series.withLock { series in
            if let index = series.firstIndex(where: { $0.key == key }) {
                series[index].workers.append(histogram)
            } else {
                let rendered = labels().map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
                series.append((key, rendered, [histogram]))
            }
        }
        return histogram
    }

    /// The family in Prometheus's text format (`# HELP`, `# TYPE`, then per series its
    /// cumulative buckets, `_sum` and `_count`), the workers' counts added up.
    func render(into out: inout String) {
        let snapshot = series.withLock { $0.map { ($0.labels, $0.workers) } }
        out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (labels, workers) in snapshot {
            var buckets = [Int](repeating: 0, count: bounds.count + 1)
            var sum: Int64 = 0
            for worker in workers { worker.add(into: &buckets, sum: &sum) }
            let prefix = labels.isEmpty ? "" : labels + ","
            var cumulative = 0
            for (index, count) in buckets.enumerated() {
                cumulative += count
                out += "\(name)_bucket{\(prefix)le=\"\(boundLabels[index])\"} \(cumulative)\n"
            }
            let braces = labels.isEmpty ? "" : "{\(labels)}"
            out += "\(name)_sum\(braces) \(Double(sum) / 1e9)\n"
            out += "\(name)_count\(braces) \(cumulative)\n"
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// A label value as Prometheus's text format quotes it.
    private static func escape(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        return value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// One worker's counts for one series of a ``HistogramFamily``.
///
/// One writer, any number of readers: only the recorder that made it records (on its loop
/// thread, checked in debug builds); a render reads from any thread. Each field is an atomic
/// written by a relaxed load and store (no read-modify-write, no locked instruction: there is
/// no other writer to race with); a reader sees each field's last store. A render in the middle
/// of a record may count the observation in its bucket and not yet in the sum: Prometheus
/// tolerates that (`_count` is the buckets' total, so it always agrees with `+Inf`).
///
/// `@unchecked Sendable`: `buckets` points to atomics this object allocates in `init` and frees
/// in `deinit`, and every access to them goes through `Atomic`'s operations.
final class WorkerHistogram: @unchecked Sendable {
    private let bounds: [Int64]
    /// One counter per bound, then the `+Inf` bucket's (not cumulative).
    private let buckets: UnsafeMutablePointer<Atomic<Int>>
    private let sum = Atomic<Int64>(0)
    #if DEBUG
    /// The writer's thread: the first to record.
    private let writer = Mutex<pthread_t?>(nil)
    #endif

    fileprivate init(bounds: [Int64]) {
        self.bounds = bounds
        buckets = .allocate(capacity: bounds.count + 1)
        for index in 0...bounds.count { (buckets + index).initialize(to: Atomic(0)) }
    }

    deinit {
        buckets.deinitialize(count: bounds.count + 1)
        buckets.deallocate()
    }

    /// Counts one observation. Only ever from one thread.
    @inline(__always)
    func record(_ duration: Duration) {
        #if DEBUG
        writer.withLock { writer in
            if let writer { precondition(pthread_equal(writer, pthread_self()) != 0, "a WorkerHistogram has one writer") }
            writer = pthread_self()
        }
        #endif
        let nanoseconds = HistogramFamily.nanoseconds(duration)
        var index = 0
        while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
        buckets[index].store(buckets[index].load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        sum.store(sum.load(ordering: .relaxed) &+ nanoseconds, ordering: .relaxed)
    }

    /// Adds this worker's counts to `totals` (one per bucket, not cumulative) and `sum`.
    fileprivate func add(into totals: inout [Int], sum total: inout Int64) {
        for index in totals.indices { totals[index] += buckets[index].load(ordering: .relaxed) }
        total &+= sum.load(ordering: .relaxed)
    }
}
