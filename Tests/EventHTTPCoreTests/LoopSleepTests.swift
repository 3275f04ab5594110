import Foundation
@testable import EventHTTPCore
import Testing

@Suite("LoopSleep")
struct LoopSleepTests {
    @Test func sleepOnTheLoopCompletesNoEarlierThanAsked() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let baseline = loop.liveEvents
        let (elapsed, onLoop) = try await Task(executorPreference: executor) {
            let start = ContinuousClock.now
            try await executor.sleep(for: .milliseconds(20))
            return (ContinuousClock.now - start, executor.thread.isCurrent)
        }.value
        #expect(elapsed >= .milliseconds(20))
        #expect(onLoop)
        #expect(loop.liveEvents == baseline)
        #expect(await loop.onLoop { executor.pendingSleeps } == 0)
        try await loop.stop()
    }

    @Test func sleepFromAnotherExecutorHopsToTheLoopAndBack() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let start = ContinuousClock.now
        try await executor.sleep(for: .milliseconds(10))
        #expect(ContinuousClock.now - start >= .milliseconds(10))
        #expect(!executor.thread.isCurrent)
        try await loop.stop()
    }

    @Test func manyShortSleepsAfterBusyTurnsAreNeverEarly() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let early = try await Task(executorPreference: executor) {
            var early: [Duration] = []
            for round in 0..<50 {
                // Busy work makes libevent's cached time stale.
                let busyUntil = ContinuousClock.now + .microseconds(500 * (round % 4))
                while ContinuousClock.now < busyUntil {}
                let start = ContinuousClock.now
                try await executor.sleep(for: .milliseconds(1))
                let elapsed = ContinuousClock.now - start
                if elapsed < .milliseconds(1) { early.append(elapsed) }
            }
            return early
        }.value
        #expect(early.isEmpty)
        try await loop.stop()
    }

    @Test func aTimerThatFiresEarlyIsReArmedForTheRest() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        // Make libevent fire 1.9 s before the deadline, as a lagging clock would (by less).
        await loop.onLoop { executor.timerSkewForTesting = .milliseconds(1_900) }
        let start = ContinuousClock.now
        try await executor.sleep(for: .seconds(2))
        #expect(ContinuousClock.now - start >= .seconds(2))
        #expect(await loop.onLoop { executor.earlyTimerRearms } >= 1)
        try await loop.stop()
    }

    @Test(arguments: [true, false])
    func cancellationWakesTheSleeperAtOnceAndFreesTheTimer(sleeperOnLoop: Bool) async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let baseline = loop.liveEvents
        let sleep: @Sendable () async throws -> Void = { try await executor.sleep(for: .seconds(60)) }
        let sleeper = sleeperOnLoop ? Task(executorPreference: executor, operation: sleep) : Task(operation: sleep)
        // Wait (by round trips through the loop, not by time) until the timer is armed.
        while await loop.onLoop({ executor.pendingSleeps }) == 0 {}
        #expect(loop.liveEvents == baseline + 1)
        let start = ContinuousClock.now
        sleeper.cancel()
        let result = await sleeper.result
        #expect(ContinuousClock.now - start < .seconds(6), "the sleeper waited for its timer")
        #expect(throws: CancellationError.self) { try result.get() }
        // The event is freed before the sleeper resumes.
        #expect(loop.liveEvents == baseline)
        #expect(await loop.onLoop { executor.pendingSleeps } == 0)
        try await loop.stop()
    }

    @Test func aTaskCancelledBeforeSleepingThrowsWithoutATimer() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let baseline = loop.liveEvents
        let sleeper = Task(executorPreference: executor) {
            withUnsafeCurrentTask { $0?.cancel() }
            try await executor.sleep(for: .seconds(60))
        }
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(loop.liveEvents == baseline)
        #expect(await loop.onLoop { executor.pendingSleeps } == 0)
        try await loop.stop()
    }

    @Test func shutdownEndsPendingSleepsAndLaterSleepsThrow() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let sleeper = Task { try await executor.sleep(for: .seconds(60)) }
        while await loop.onLoop({ executor.pendingSleeps }) == 0 {}
        try await loop.stop()
        await #expect(throws: LoopExecutor.ShutdownError.self) { try await sleeper.value }
        #expect(loop.liveEvents == 0)
        await #expect(throws: LoopExecutor.ShutdownError.self) { try await executor.sleep(for: .milliseconds(1)) }
    }

    /// The executor keeps no table of its sleepers: shutdown finds them among the base's
    /// events (the executor's own wake-up event among them), by their callback.
    @Test func shutdownEndsEverySleepAmongTheBasesOtherEvents() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let count = 50
        let sleepers = (0..<count).map { i in
            Task(executorPreference: i.isMultiple(of: 2) ? executor : nil) {
                try await executor.sleep(for: .seconds(60 + i))
            }
        }
        while await loop.onLoop({ executor.pendingSleeps }) < count {}
        try await loop.stop()
        for sleeper in sleepers {
            await #expect(throws: LoopExecutor.ShutdownError.self) { try await sleeper.value }
        }
        #expect(loop.liveEvents == 0)
    }

    @Test func racingTimersAndCancellationsResumeEachSleeperOnce() async throws {
        let loop = try await LoopHarness.start()
        let executor = loop.executor
        let baseline = loop.liveEvents
        let sleepers = 500
        let outcomes = await withTaskGroup(of: (slept: Bool, early: Bool).self) { group in
            for i in 0..<sleepers {
                let duration = Duration.microseconds((i * 7_919) % 3_000)
                let cancelAfter = Duration.microseconds((i * 104_729) % 3_000)
                group.addTask {
                    let sleeper = Task(executorPreference: i.isMultiple(of: 2) ? executor : nil) {
                        let start = ContinuousClock.now
                        try await executor.sleep(for: duration)
                        return ContinuousClock.now - start
                    }
                    try? await Task.sleep(for: cancelAfter)
                    sleeper.cancel()
                    switch await sleeper.result {
                    case .success(let elapsed): return (true, elapsed < duration)
                    case .failure(let error):
                        #expect(error is CancellationError)
                        return (false, false)
                    }
                }
            }
            return await group.reduce(into: [(slept: Bool, early: Bool)]()) { $0.append($1) }
        }
        #expect(outcomes.count == sleepers)
        #expect(!outcomes.contains { $0.early })
        #expect(loop.liveEvents == baseline)
        #expect(await loop.onLoop { executor.pendingSleeps } == 0)
        try await loop.stop()
    }
}
