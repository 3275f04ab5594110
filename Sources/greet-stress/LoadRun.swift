import GreetdClient
import GreetdRules
import EventHTTPSystem
import EventHTTPCore
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One load run, start to verdict, on one ``EventBase``.
///
/// ## Phases
/// `measuringBefore` (read `/metrics`) → `loading` (open, send, abort; `/metrics` every 500 ms
/// for peak memory) → `settling` (read `/metrics` every 100 ms until the server's in-flight gauge
/// is back where it started and its counters match ours, or `--settle` has passed) → `finished`
/// (the loop exits). With `--no-verify`, `loading` is the only phase that does anything.
///
/// ## Timers
/// All on the run's base, all owned here and told apart by tag: the `--duration` deadline, the
/// `--rate` tick, the progress line, the metrics poll, a deferred "fill" that opens connections
/// after slots free up (never from inside another connection's callback), the back-off after
/// `EMFILE`, and `SIGINT` (stop opening, abort what is open, report).
///
/// Ownership: owns every live ``StressRequest`` and the current ``MetricsFetch``; drops them all
/// in ``finish()``, before the loop returns. Threading: loop-confined to `base`'s thread.
final class LoadRun: EventTarget {
    enum Phase {
        case measuringBefore, loading, settling, finished
    }

    let plan: StressPlan
    let address: IPEndpoint
    let base: EventBase
    private(set) var phase = Phase.measuringBefore
    private(set) var tally = Tally()

    private var requests: [ObjectIdentifier: StressRequest] = [:]
    private var nextNumber = 0
    /// Requests whose connect was put off (`EMFILE`, ...), to try again first.
    private var retryNumbers: [Int] = []
    private(set) var stopReason: String?
    /// Connects allowed now under `--rate`.
    private var tokens = 1.0
    private var lastRateTick = ContinuousClock.now
    private var backingOff = false
    private var loadStart: ContinuousClock.Instant?
    private var loadEnd: ContinuousClock.Instant?

    private(set) var before: MetricsSample?
    private(set) var after: MetricsSample?
    private(set) var peakResidentBytes: Int?
    /// Why the run could not even start (no `/metrics` before it), or broke.
    private(set) var failure: String?
    /// Why `/metrics` could not be read after the run, if it could not.
    private(set) var afterProblem: String?
    private var fetch: MetricsFetch?
    private var settleDeadline: ContinuousClock.Instant?

    private let progressOutput: Output
    private let progressIsTerminal: Bool
    private var progressLineOpen = false

    private enum Tag: Int {
        case deadline, rate, progress, metricsPoll, fill, backoff, settlePoll, interrupt
    }
    private var events: [Tag: Event] = [:]

    /// Makes the run and its timers; nothing happens until ``start()``.
    init(plan: StressPlan, address: IPEndpoint, base: EventBase, progress: Output) throws(LibeventError) {
        base.thread.preconditionOnThread()
        self.plan = plan
        self.address = address
        self.base = base
        self.progressOutput = progress
        self.progressIsTerminal = progress.isTerminal
        for tag in [Tag.deadline, .rate, .progress, .metricsPoll, .fill, .backoff, .settlePoll] {
            let persist: EventFlags = tag == .rate || tag == .progress || tag == .metricsPoll ? .persist : []
            events[tag] = try Event(base: base, flags: persist, target: self, tag: tag.rawValue)
        }
        events[.interrupt] = try Event(base: base, fd: SIGINT, flags: [.signal, .persist], target: self, tag: Tag.interrupt.rawValue)
    }

    /// Reads `/metrics` (unless `--no-verify`), then starts the load. Run the base afterwards;
    /// it returns when the run is over.
    func start() throws(LibeventError) {
        base.thread.preconditionOnThread()
        try events[.interrupt]?.add()
        if plan.verify {
            startFetch()
        } else {
            startLoad()
        }
    }

    /// Time spent loading (to the last close, or to now while loading).
    var elapsed: Duration {
        guard let loadStart else { return .zero }
        return (loadEnd ?? .now) - loadStart
    }

    // MARK: - Loading

    private func startLoad() {
        phase = .loading
        loadStart = .now
        lastRateTick = .now
        arm(.deadline, after: plan.duration)
        arm(.progress, after: progressIsTerminal ? .milliseconds(250) : .seconds(1))
        if plan.verify { arm(.metricsPoll, after: .milliseconds(500)) }
        if plan.rate > 0 {
            arm(.rate, after: .nanoseconds(Int64(max(1e6, min(1e7, 1e9 / plan.rate)))))
        }
        fill()
    }

    /// Opens connections while there are free slots, requests left, and (with `--rate`) tokens.
    private func fill() {
        guard phase == .loading, stopReason == nil, !backingOff else { return }
        while requests.count < plan.connections, !backingOff, plan.rate == 0 || tokens >= 1 {
            let number: Int
            if !retryNumbers.isEmpty {
                number = retryNumbers.removeFirst()
            } else if nextNumber < plan.requests {
                number = nextNumber
                nextNumber += 1
            } else {
                break
            }
            if plan.rate > 0 { tokens -= 1 }
            open(number)
        }
        checkLoadDone()
    }

    private func open(_ number: Int) {
        let request = StressRequest(number: number, intent: plan.intent(for: number), run: self)
        do throws(LibeventError) {
            try request.start(to: address, base: base)
            requests[ObjectIdentifier(request)] = request
            tally.started += 1
        } catch {
            if case .callFailed(_, let code?) = error, [Errno.tooManyOpenFiles, .tooManyOpenFilesInSystem, .addressNotAvailable, .noBufferSpace, .noMemory].contains(code) {
                // The machine ran short, not the server: wait a little and try this request again.
                tally.retries[code.name, default: 0] += 1
                retryNumbers.append(number)
                backingOff = true
                arm(.backoff, after: .milliseconds(code == .addressNotAvailable ? 200 : 50))
            } else {
                tally.record(.error(errorName(error)))
            }
        }
    }

    /// A request's connect finished.
    func requestConnected() {
        tally.opened += 1
    }

    /// A request's outcome is known (its socket may stay open a while: a half-close).
    func requestFinished(_ outcome: RequestOutcome) {
        tally.record(outcome)
    }

    /// A request's socket is closed: its slot is free.
    func requestReleased(_ request: StressRequest) {
        requests[ObjectIdentifier(request)] = nil
        if phase == .loading && stopReason == nil {
            events[.fill]?.activate()  // fill from the loop, not from inside this request's callback
        }
        checkLoadDone()
    }

    /// A server-sent event arrived (`--stream`).
    func eventReceived(_ event: ServerSentEvent) {
        tally.events[event.type, default: 0] += 1
    }

    /// The server answered a half-closed request before it closed the connection.
    func noteHalfCloseAnswer(_ name: String) {
        tally.halfCloseAnswers[name, default: 0] += 1
    }

    /// The server kept a half-closed connection open past the linger limit.
    func noteHalfCloseLeftOpen() {
        tally.halfClosesLeftOpen += 1
    }

    /// Stops the run on an internal failure (a timer that cannot be armed).
    func fail(_ message: String) {
        if failure == nil { failure = message }
        finish()
    }

    private func checkLoadDone() {
        guard phase == .loading, requests.isEmpty else { return }
        guard stopReason != nil || (nextNumber >= plan.requests && retryNumbers.isEmpty) else { return }
        endLoad()
    }

    /// `--duration` or Ctrl+C: stop opening, abort everything open.
    private func stop(_ reason: String) {
        guard phase == .loading, stopReason == nil else { return }
        stopReason = reason
        for request in Array(requests.values) { request.cutOff() }
        checkLoadDone()
    }

    private func endLoad() {
        loadEnd = .now
        phase = .settling
        for tag in [Tag.deadline, .rate, .progress, .metricsPoll, .fill, .backoff] { events[tag]?.remove() }
        printProgress(final: true)
        guard plan.verify else {
            finish()
            return
        }
        settleDeadline = .now + plan.settle
        if fetch == nil { startFetch() }  // else the poll on its way counts as the first settle read
    }

    // MARK: - Metrics

    private func startFetch() {
        do throws(LibeventError) {
            fetch = try MetricsFetch(plan: plan, address: address, base: base) { [unowned self] result in
                self.fetch = nil
                self.fetchCompleted(result)
            }
        } catch {
            fetchCompleted(.failure(.io(error)))
        }
    }

    private func fetchCompleted(_ result: Result<MetricsSample, MetricsProblem>) {
        if case .success(let sample) = result, let rss = sample.residentBytes {
            peakResidentBytes = max(peakResidentBytes ?? 0, rss)
        }
        switch (phase, result) {
        case (.measuringBefore, .success(let sample)):
            before = sample
            startLoad()
        case (.measuringBefore, .failure(let problem)):
            failure = "cannot read http://\(address)\(plan.metricsPath): \(problem)" + problem.advice(for: address)
            finish()
        case (.loading, .failure):
            tally.metricsPollFailures += 1
        case (.loading, .success):
            break
        case (.settling, .success(let sample)):
            after = sample
            afterProblem = nil
            if isSettled(sample) || ContinuousClock.now >= settleDeadline! {
                finish()
            } else {
                arm(.settlePoll, after: .milliseconds(100))
            }
        case (.settling, .failure(let problem)):
            afterProblem = "cannot read http://\(address)\(plan.metricsPath) after the run: \(problem)"
            if ContinuousClock.now >= settleDeadline! {
                finish()
            } else {
                arm(.settlePoll, after: .milliseconds(100))
            }
        case (.finished, _):
            break
        }
    }

    /// The server is back where it started, and its counts match ours.
    private func isSettled(_ sample: MetricsSample) -> Bool {
        guard let before else { return true }
        return sample.inFlight == before.inFlight
            && sample.canceled - before.canceled == tally.aborted
            && sample.completed - before.completed == tally.completed
    }

    // MARK: - Timers

    func eventFired(tag: Int, flags: EventFlags) {
        switch Tag(rawValue: tag)! {
        case .deadline:
            stop("--duration \(GoDuration(plan.duration)) reached")
        case .rate:
            let now = ContinuousClock.now
            let interval = now - lastRateTick
            lastRateTick = now
            tokens = min(tokens + plan.rate * interval.secondsValue, max(1, plan.rate * 0.02))
            fill()
        case .progress:
            printProgress(final: false)
        case .metricsPoll:
            if fetch == nil { startFetch() }
        case .fill:
            fill()
        case .backoff:
            backingOff = false
            fill()
        case .settlePoll:
            if fetch == nil { startFetch() }
        case .interrupt:
            if phase == .loading {
                stop("interrupted (SIGINT)")
            } else {
                if afterProblem == nil && phase == .settling && after == nil { afterProblem = "interrupted before /metrics was read" }
                finish()
            }
        }
    }

    private func arm(_ tag: Tag, after delay: Duration) {
        do throws(LibeventError) {
            try events[tag]?.add(timeout: delay)
        } catch {
            fail("cannot arm a timer: \(error)")
        }
    }

    /// Ends the run: closes whatever is still open, drops every event, and stops the loop.
    func finish() {
        guard phase != .finished else { return }
        if phase == .loading {
            stopReason = stopReason ?? "internal error"
            for request in Array(requests.values) { request.cutOff() }
            loadEnd = .now
        }
        phase = .finished
        if progressLineOpen { progressOutput.write("\n") }  // stopped before the final progress line
        progressLineOpen = false
        requests = [:]
        fetch = nil
        events = [:]
        base.exit()
    }

    // MARK: - Progress

    private func printProgress(final: Bool) {
        let line = "opened \(tally.opened)  aborted \(tally.aborted)  completed \(tally.completed)  "
            + "errors \(tally.errorCount)  in flight \(requests.count)"
            + (plan.stream ? "  events \(tally.events.values.reduce(0, +))" : "") + "  elapsed \(formatSeconds(elapsed))"
        if progressIsTerminal {
            // Rewritten in place; the last one stays, followed by a newline.
            progressOutput.write("\r\u{1B}[K" + line + (final ? "\n" : ""))
            progressLineOpen = !final
        } else if !final {
            progressOutput.write(line + "\n")
        }
    }
}
