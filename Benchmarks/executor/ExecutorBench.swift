// Executor overhead: jobs per second through a LoopExecutor, beside a serial DispatchQueue doing
// the same work. Run in release mode on an otherwise idle machine:
//
//     swift run -c release executor-bench [--jobs 1000000] [--repeats 5]
//
// Each figure is the best of `repeats` runs: jobs divided by the time from the first enqueue to
// the last job's end.
//
// `--scenario NAME[,NAME...]` (or `all`) runs the library's per-request paths instead (routing,
// the body, an async answer; see LibraryBench.swift), `--ops N` times each.
import Dispatch
import Foundation
import EventHTTPCore

@main
struct ExecutorBench {
    /// Synchronous, so that the library scenarios run without an async main: valgrind 3.19
    /// crashes as an async main parks the main thread in `dispatchMain()` (micro-cost.py runs
    /// them under valgrind). The executor table runs as before: its body as the main actor's
    /// task, the main queue drained by `dispatchMain()`, as an async main does.
    static func main() {
        let arguments = CommandLine.arguments
        func option(_ name: String, _ fallback: Int) -> Int {
            guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count,
                  let value = Int(arguments[index + 1]) else { return fallback }
            return value
        }
        let jobs = option("--jobs", 1_000_000)
        let repeats = option("--repeats", 5)
        if let index = arguments.firstIndex(of: "--scenario"), index + 1 < arguments.count {
            let ops = arguments.contains("--ops") ? option("--ops", 0) : nil
            do {
                try LibraryBench.run(names: arguments[index + 1], ops: ops, repeats: repeats)
            } catch {
                FileHandle.standardError.write(Data("executor-bench: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        Task {
            do {
                try await executorTable(jobs: jobs, repeats: repeats)
            } catch {
                FileHandle.standardError.write(Data("executor-bench: \(error)\n".utf8))
                exit(1)
            }
            exit(0)
        }
        dispatchMain()
    }

    static func executorTable(jobs: Int, repeats: Int) async throws {
        let calls = jobs / 10

        let loop = try BenchLoop.start()
        let queue = DispatchQueue(label: "executor-bench")
        print("executor-bench: \(jobs) closures, \(calls) actor calls, best of \(repeats); \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
        print("")
        print(pad("scenario", 48) + pad("LoopExecutor", 22) + "DispatchQueue (serial)")

        let loopSubmit: @Sendable (@escaping @Sendable () -> Void) -> Void = { loop.executor.execute($0) }
        let queueSubmit: @Sendable (@escaping @Sendable () -> Void) -> Void = { queue.async(execute: $0) }

        report("closures, burst, enqueued on its own thread",
               best(repeats, jobs) { burstOnOwnThread(jobs, submit: loopSubmit) },
               best(repeats, jobs) { burstOnOwnThread(jobs, submit: queueSubmit) })
        report("closures, chain (each enqueues the next)",
               best(repeats, jobs) { chain(jobs, submit: loopSubmit) },
               best(repeats, jobs) { chain(jobs, submit: queueSubmit) })
        let wakeUpsBefore = loop.executor.wakeUps
        report("closures, cross-thread, 1 producer",
               best(repeats, jobs) { crossThread(jobs, producers: 1, submit: loopSubmit) },
               best(repeats, jobs) { crossThread(jobs, producers: 1, submit: queueSubmit) })
        let wakeUpsOne = loop.executor.wakeUps - wakeUpsBefore
        report("closures, cross-thread, 4 producers",
               best(repeats, jobs) { crossThread(jobs, producers: 4, submit: loopSubmit) },
               best(repeats, jobs) { crossThread(jobs, producers: 4, submit: queueSubmit) })
        let wakeUpsFour = loop.executor.wakeUps - wakeUpsBefore - wakeUpsOne
        report("closures, cross-thread round trip (wait each)",
               best(repeats, calls) { roundTrips(calls, submit: loopSubmit) },
               best(repeats, calls) { roundTrips(calls, submit: queueSubmit) })

        let loopActor = BenchActor(loop.executor)
        let queueActor = BenchActor(QueueExecutor(queue))
        report("actor calls from the global pool (2 hops)",
               await bestAsync(repeats, calls) { await callsFromGlobalPool(calls, loopActor) },
               await bestAsync(repeats, calls) { await callsFromGlobalPool(calls, queueActor) })
        let onLoop = await bestAsync(repeats, calls) {
            await Task(executorPreference: loop.executor) { await callActor(calls, loopActor) }.value
        }
        report("actor calls from a task on the loop (2 hops)", onLoop, nil)
        print("")
        print("Round trips and actor calls: \(calls) per run; rates are per round trip or call.")
        print("Self-pipe wake-ups over all \(repeats) runs of \(jobs) cross-thread closures:")
        print("  1 producer: \(wakeUpsOne) (\(ratio(wakeUpsOne, repeats * jobs)) per closure), 4 producers: \(wakeUpsFour) (\(ratio(wakeUpsFour, repeats * jobs)) per closure)")
        loop.stop()
    }
}

// MARK: Scenarios (each returns once every job has run)

/// From the executor's own thread, enqueue `jobs` closures in a row.
func burstOnOwnThread(_ jobs: Int, submit: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
    let done = DispatchSemaphore(value: 0)
    let counter = Counter()
    submit {
        for _ in 0..<jobs {
            submit {
                counter.value += 1
                if counter.value == jobs { done.signal() }
            }
        }
    }
    done.wait()
}

/// Each job enqueues the next from the executor's own thread: one job in the queue at a time.
func chain(_ jobs: Int, submit: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
    let done = DispatchSemaphore(value: 0)
    let counter = Counter()
    @Sendable func step() {
        counter.value += 1
        if counter.value == jobs { done.signal() } else { submit(step) }
    }
    submit(step)
    done.wait()
}

/// `producers` threads enqueue `jobs` closures between them.
func crossThread(_ jobs: Int, producers: Int, submit: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
    let done = DispatchSemaphore(value: 0)
    let counter = Counter()
    let share = jobs / producers
    for producer in 0..<producers {
        let count = producer == producers - 1 ? jobs - share * (producers - 1) : share
        Thread.detachNewThread {
            for _ in 0..<count {
                submit {
                    counter.value += 1
                    if counter.value == jobs { done.signal() }
                }
            }
        }
    }
    done.wait()
}

/// One closure at a time from this thread, waiting for each to run: the wake-up latency.
func roundTrips(_ jobs: Int, submit: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
    let ran = DispatchSemaphore(value: 0)
    for _ in 0..<jobs {
        submit { ran.signal() }
        ran.wait()
    }
}

func callsFromGlobalPool(_ calls: Int, _ actor: BenchActor) async {
    await Task.detached { await callActor(calls, actor) }.value
}

func callActor(_ calls: Int, _ actor: BenchActor) async {
    var last = 0
    for _ in 0..<calls { last = await actor.bump() }
    // Use the result, so that the optimiser keeps the calls and their executor hops.
    precondition(last > 0)
}

// MARK: Support

/// A counter touched only by jobs of one serial executor (the loop thread, or the queue).
final class Counter: @unchecked Sendable {
    // @unchecked Sendable: every access runs on one serial executor, one job at a time.
    var value = 0
}

/// An actor on a given serial executor, which it keeps alive (the runtime holds it unowned).
actor BenchActor {
    private let executor: any SerialExecutor
    private var count = 0

    init(_ executor: any SerialExecutor) { self.executor = executor }

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    func bump() -> Int {
        count += 1
        return count
    }
}

/// A serial DispatchQueue as a Swift executor, as Dispatch's own conformance does on Darwin.
final class QueueExecutor: SerialExecutor {
    let queue: DispatchQueue
    init(_ queue: DispatchQueue) { self.queue = queue }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }
}

/// The loop under test, on a thread of its own.
final class BenchLoop: Sendable {
    let executor: LoopExecutor
    private let finished: DispatchSemaphore

    private init(executor: LoopExecutor, finished: DispatchSemaphore) {
        self.executor = executor
        self.finished = finished
    }

    static func start() throws -> BenchLoop {
        let ready = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        // nonisolated(unsafe): written by the loop thread before `ready.signal()`, read here only
        // after `ready.wait()`, which orders the two.
        nonisolated(unsafe) var made: LoopExecutor?
        nonisolated(unsafe) var failure: (any Error)?
        Thread.detachNewThread {
            do {
                let base = try EventBase()
                let executor = try LoopExecutor(base: base)
                made = executor
                ready.signal()
                try executor.eventBase.run()
                executor.shutdown()
            } catch {
                failure = error
                ready.signal()
            }
            finished.signal()
        }
        ready.wait()
        if let failure { throw failure }
        return BenchLoop(executor: made!, finished: finished)
    }

    func stop() {
        executor.execute { [executor] in executor.eventBase.exit() }
        finished.wait()
    }
}

func best(_ repeats: Int, _ jobs: Int, _ body: () -> Void) -> Double {
    var rates: [Double] = []
    for _ in 0..<repeats {
        let start = ContinuousClock.now
        body()
        rates.append(Double(jobs) / seconds(ContinuousClock.now - start))
    }
    return rates.max() ?? 0
}

func bestAsync(_ repeats: Int, _ jobs: Int, _ body: @Sendable () async -> Void) async -> Double {
    var rates: [Double] = []
    for _ in 0..<repeats {
        let start = ContinuousClock.now
        await body()
        rates.append(Double(jobs) / seconds(ContinuousClock.now - start))
    }
    return rates.max() ?? 0
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func report(_ label: String, _ loop: Double, _ queue: Double?) {
    func cell(_ rate: Double) -> String {
        "\(millions(rate)) M/s (\(Int((1e9 / rate).rounded())) ns)"
    }
    print(pad(label, 48) + pad(cell(loop), 22) + (queue.map(cell) ?? "n/a"))
}

func millions(_ rate: Double) -> String {
    String(format: "%.2f", rate / 1e6)
}

func ratio(_ part: Int, _ whole: Int) -> String {
    String(format: "%.4f", Double(part) / Double(max(whole, 1)))
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
