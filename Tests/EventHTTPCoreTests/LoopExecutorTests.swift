import Dispatch
import Foundation
@testable import EventHTTPCore
import Testing

@Suite("LoopExecutor")
struct LoopExecutorTests {
    @Test func jobsFromTheLoopThreadRunInOrderWithNoWakeUp() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let log = Locked<[Int]>([])
        let wakeUpsDuringRun = Locked<Int?>(nil)
        let done = OneShot<Void>()
        let count = 1_000
        executor.execute {
            let before = executor.wakeUps
            // Closures and Swift jobs (each Task's first job) share one queue.
            for i in 0..<count {
                let record: @Sendable () -> Void = {
                    precondition(executor.thread.isCurrent)
                    log.update { $0.append(i) }
                    if i == count - 1 {
                        wakeUpsDuringRun.set(executor.wakeUps - before)
                        done.fulfill(())
                    }
                }
                if i % 3 == 0 {
                    Task(executorPreference: executor) { record() }
                } else {
                    executor.execute(record)
                }
            }
        }
        await done.value
        #expect(log.value == Array(0..<count))
        #expect(wakeUpsDuringRun.value == 0, "enqueueing on the loop thread wrote to the self-pipe")
        try await loop.stop()
    }

    @Test func crossThreadJobsFromManyThreadsAllRunInPerThreadOrder() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let threads = 8
        let perThread = 10_000
        let lastSeen = Locked([Int](repeating: -1, count: threads))
        let outOfOrder = Locked(0)
        let offLoop = Locked(0)
        let ran = Locked(0)
        let done = OneShot<Void>()
        for t in 0..<threads {
            Thread.detachNewThread {
                for i in 0..<perThread {
                    executor.execute {
                        if !executor.thread.isCurrent { offLoop.update { $0 += 1 } }
                        lastSeen.update { seen in
                            if seen[t] != i - 1 { outOfOrder.update { $0 += 1 } }
                            seen[t] = i
                        }
                        var total = 0
                        ran.update { $0 += 1; total = $0 }
                        if total == threads * perThread { done.fulfill(()) }
                    }
                }
            }
        }
        await done.value
        #expect(ran.value == threads * perThread)
        #expect(outOfOrder.value == 0)
        #expect(offLoop.value == 0)
        #expect(lastSeen.value == [Int](repeating: perThread - 1, count: threads))
        try await loop.stop()
    }

    @Test func crossThreadEnqueuesWhileADrainIsPendingWriteNoWakeUp() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let entered = OneShot<Void>()
        let gate = DispatchSemaphore(value: 0)
        // Blocks the loop thread (our own thread, not a cooperative one) inside a job.
        executor.execute {
            entered.fulfill(())
            gate.wait()
        }
        await entered.value
        let before = executor.wakeUps
        let log = Locked<[Int]>([])
        let done = OneShot<Void>()
        for i in 0..<1_000 {
            executor.execute {
                log.update { $0.append(i) }
                if i == 999 { done.fulfill(()) }
            }
        }
        #expect(executor.wakeUps == before, "the running drain will see these jobs: no wake-up needed")
        gate.signal()
        await done.value
        #expect(log.value == Array(0..<1_000))
        #expect(executor.wakeUps == before, "nor after the drain picked them up")
        try await loop.stop()
    }

    @Test func assumeIsolatedWorksOnTheLoopThread() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let counter = LoopCounter(executor: executor)
        #expect(executor.isIsolatingCurrentContext() == false)
        // From a plain closure on the loop thread: no Swift executor is "current", so the runtime
        // asks ours (isIsolatingCurrentContext / checkIsolated).
        let fromClosure = await loop.onLoop {
            counter.assumeIsolated { counter in
                counter.count += 1
                return counter.count
            }
        }
        #expect(fromClosure == 1)
        // From a libevent callback.
        let fromEvent = await loop.onLoop { () -> OneShot<Int> in
            let fired = OneShot<Int>()
            let holder = EventHolder()
            holder.event = try? Event(base: executor.eventBase) { _ in
                fired.fulfill(counter.assumeIsolated { counter in
                    counter.count += 1
                    return counter.count
                })
                holder.event = nil
            }
            try? holder.event?.add(timeout: .milliseconds(1))
            return fired
        }
        #expect(await fromEvent.value == 2)
        // From a Task that prefers the executor.
        let fromTask = await Task(executorPreference: executor) {
            executor.preconditionIsolated()
            return counter.bumpAssumingIsolated()
        }.value
        #expect(fromTask == 3)
        try await loop.stop()
    }

    @Test func anActorOnTheLoopExecutorRunsItsCallsOneAtATimeOnTheLoop() async throws {
        let loop = try await LoopHarness.start()
        let counter = LoopCounter(executor: loop.executor)
        let calls = 1_000
        let onLoop = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<calls {
                group.addTask { await counter.bump() }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(onLoop == calls)
        #expect(await counter.count == calls)
        try await loop.stop()
    }

    @Test func taskExecutorPreferenceRunsNonisolatedCodeOnTheLoop() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let results = await withTaskExecutorPreference(executor) {
            await threadChecks(executor)
        }
        #expect(results == [true, true])
        #expect(await threadChecks(executor) == [false, false])
        try await loop.stop()
    }

    @Test func eachRoleRunsItsJobsWithNoExtraHop() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let counter = LoopCounter(executor: executor)
        // A task preferring the loop, started on the loop: its one job runs the whole body.
        // (Task.yield would add two: the runtime's resume job, then the task itself.)
        let taskJobs = await loop.onLoop { () -> OneShot<Int> in
            let ran = OneShot<Int>()
            let before = executor.jobsRun
            Task(executorPreference: executor) {
                _ = await isOnLoop(executor)  // a nonisolated call: no hop
                ran.fulfill(executor.jobsRun - before)
            }
            return ran
        }
        let taskJobCount = await taskJobs.value
        #expect(taskJobCount == 1)
        // An actor on the loop, called from a task preferring the loop: a job to enter it and one
        // to return, none for the calls within it.
        let actorJobs = await loop.onLoop { () -> OneShot<Int> in
            let ran = OneShot<Int>()
            let before = executor.jobsRun
            Task(executorPreference: executor) {
                await counter.bumpTwiceWithinTheActor()
                ran.fulfill(executor.jobsRun - before)
            }
            return ran
        }
        let actorJobCount = await actorJobs.value
        #expect(actorJobCount == 3, "task start, actor entry, return to the task")
        try await loop.stop()
    }

    @Test func aYieldingTaskDoesNotStarveTheLoopsTimers() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let timerFired = Locked(false)
        await loop.onLoop {
            let holder = EventHolder()
            holder.event = try? Event(base: executor.eventBase) { _ in
                timerFired.set(true)
                holder.event = nil
            }
            try? holder.event?.add(timeout: .milliseconds(1))
        }
        let yields = await Task(executorPreference: executor) {
            var yields = 0
            while !timerFired.value && yields < 10_000_000 {
                await Task.yield()
                yields += 1
            }
            return yields
        }.value
        #expect(timerFired.value, "the loop never polled its timers in \(yields) yields")
        try await loop.stop()
    }

    @Test func jobsEnqueuedWhileTheLoopStopsRunInShutdownsFinalDrain() async throws {
        let stopped = OneShot<Void>()
        let proceed = DispatchSemaphore(value: 0)
        let order = Locked<[String]>([])
        let loop = try await LoopHarness.start { executor in
            // On the loop thread, after run() returned and before shutdown().
            stopped.fulfill(())
            proceed.wait()
            executor.execute { order.update { $0.append("from the loop thread after run()") } }
        }
        let executor = loop.executor
        let parked = OneShot<CheckedContinuation<Void, Never>>()
        let waiter = Task(executorPreference: executor) {
            await withCheckedContinuation { parked.fulfill($0) }
            order.update { $0.append("resumed task") }
            return executor.thread.isCurrent
        }
        let continuation = await parked.value
        loop.requestStop()
        await stopped.value
        // The loop no longer runs. Enqueue from this thread, then let it shut down.
        continuation.resume()  // the task's next job goes to the stopped loop
        executor.execute {
            order.update { $0.append("closure") }
            // Enqueued during the final drain: runs in it too.
            executor.execute { order.update { $0.append("nested") } }
        }
        proceed.signal()
        try await loop.finished()
        #expect(await waiter.value == true)
        #expect(order.value == ["resumed task", "closure", "from the loop thread after run()", "nested"])
        #expect(executor.isShutDown)
    }

    @Test func enqueueAfterShutdownIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            let loop = try await LoopHarness.start()
            try await loop.stop()
            loop.executor.execute {}
        }
    }

    @Test func checkIsolatedOffTheLoopIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            let loop = try await LoopHarness.start()
            loop.executor.checkIsolated()
        }
    }
}

/// An actor whose executor is a loop's.
actor LoopCounter {
    let executor: LoopExecutor
    var count = 0

    init(executor: LoopExecutor) { self.executor = executor }

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Counts one call from synchronous code that must already run on the loop.
    nonisolated func bumpAssumingIsolated() -> Int {
        assumeIsolated { counter in
            counter.count += 1
            return counter.count
        }
    }

    /// Calls an isolated async method of the same actor: no hop between them.
    func bumpTwiceWithinTheActor() async {
        _ = await nestedBump()
        _ = await nestedBump()
    }

    private func nestedBump() async -> Bool { bump() }

    /// Counts one call; whether it ran on the loop thread.
    func bump() -> Bool {
        count += 1
        return executor.thread.isCurrent
    }
}

/// Whether nonisolated async code, which does not suspend, runs on the loop.
func isOnLoop(_ executor: LoopExecutor) async -> Bool {
    executor.thread.isCurrent
}

/// Nonisolated async code: in Swift 6 mode it runs on the task's preferred executor, if any.
func threadChecks(_ executor: LoopExecutor) async -> [Bool] {
    let first = executor.thread.isCurrent
    await Task.yield()
    return [first, executor.thread.isCurrent]
}

/// Keeps a loop-confined event alive from inside its own handler.
final class EventHolder {
    var event: Event?
}

/// A value shared between threads behind an `NSLock` (a pthread mutex, which ThreadSanitizer
/// sees; it cannot see `Synchronization.Mutex` on Linux and reports false races through it).
final class Locked<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `stored` is touched only while `lock` is held.
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) { stored = value }

    var value: Value { lock.withLock { stored } }
    func set(_ value: Value) { lock.withLock { stored = value } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}

/// A value set once from any thread, awaited by any number of tasks without blocking a thread.
final class OneShot<Value: Sendable>: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Value, Never>])
        case done(Value)
    }

    private let state = Locked<State>(.waiting([]))

    init() {}

    func fulfill(_ value: Value) {
        var waiters: [CheckedContinuation<Value, Never>] = []
        state.update { state in
            guard case .waiting(let pending) = state else { preconditionFailure("OneShot fulfilled twice") }
            state = .done(value)
            waiters = pending
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                var ready: Value?
                state.update { state in
                    switch state {
                    case .done(let value):
                        ready = value
                    case .waiting(var waiters):
                        waiters.append(continuation)
                        state = .waiting(waiters)
                    }
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

/// A libevent loop with a ``LoopExecutor``, running on a thread of its own, for async tests.
final class LoopHarness: Sendable {
    let executor: LoopExecutor
    /// The base's live-handle counters (the base itself stays on the loop thread).
    let counters: LibeventCounters
    private let done: OneShot<Result<Void, LibeventError>>

    private init(executor: LoopExecutor, counters: LibeventCounters, done: OneShot<Result<Void, LibeventError>>) {
        self.executor = executor
        self.counters = counters
        self.done = done
    }

    /// Starts the loop thread. `afterRun` runs there once `run()` returned, before `shutdown()`.
    static func start(afterRun: @escaping @Sendable (LoopExecutor) -> Void = { _ in }) async throws -> LoopHarness {
        let started = OneShot<Result<(LoopExecutor, LibeventCounters), LibeventError>>()
        let done = OneShot<Result<Void, LibeventError>>()
        Thread.detachNewThread {
            let executor: LoopExecutor
            do throws(LibeventError) {
                let base = try EventBase()
                executor = try LoopExecutor(base: base)
                started.fulfill(.success((executor, base.counters)))
            } catch {
                started.fulfill(.failure(error))
                return
            }
            let outcome: Result<Void, LibeventError>
            do throws(LibeventError) {
                try executor.eventBase.run()
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            afterRun(executor)
            executor.shutdown()  // the base goes here, on its thread
            done.fulfill(outcome)
        }
        let (executor, counters) = try await started.value.get()
        return LoopHarness(executor: executor, counters: counters, done: done)
    }

    /// Runs `body` on the loop thread and returns its result.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        let result = OneShot<T>()
        executor.execute { result.fulfill(body()) }
        return await result.value
    }

    /// Asks the loop to return from `run()`.
    func requestStop() {
        executor.execute { [executor] in executor.eventBase.exit() }
    }

    /// Waits until the loop thread has shut the executor down.
    func finished() async throws {
        try await done.value.get()
    }

    /// Stops the loop and waits for the shutdown.
    func stop() async throws {
        requestStop()
        try await finished()
    }

    var liveEvents: Int { counters.liveEvents.load(ordering: .relaxed) }
}
