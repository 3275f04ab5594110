import Foundation
import EventHTTPCore
import Testing

@Suite("LoopWakeup")
struct LoopWakeupTests {
    @Test func wakeFromAnotherThreadRunsHandlerOnLoopThread() throws {
        let wakeup = try LoopWakeup()
        let wakerThread = Shared<LoopThread?>(nil)
        try withBase { base in
            var handlerCalls = 0
            var handlerOnLoopThread = false
            do {
                let watchdog = try Watchdog(base, after: .seconds(20))
                let event = try wakeup.makeEvent(on: base) {
                    handlerCalls += 1
                    handlerOnLoopThread = base.thread.isCurrent
                    base.exit()
                }
                #expect(event.isPending)  // makeEvent arms it
                // Start the waker from inside the running loop, so the wake surely comes while
                // the loop runs (no sleep: the loop waits in its backend, or is about to).
                let starter = try Event(base: base) { _ in
                    Thread.detachNewThread {
                        wakerThread.set(LoopThread.current)
                        wakeup.wake()
                    }
                }
                try starter.add(timeout: .zero)
                try base.run()
                #expect(!watchdog.expired)
                withExtendedLifetime(event) {}
            }
            #expect(handlerCalls == 1)
            #expect(handlerOnLoopThread)
            let waker = try #require(wakerThread.value)
            #expect(waker != base.thread)
        }
    }

    @Test func manyWakesCoalesceIntoOneHandlerCall() throws {
        let wakeup = try LoopWakeup()
        // More bytes than a pipe holds (64 KiB on Linux): the extra writes hit EAGAIN, which
        // wake() ignores because a wakeup is already pending.
        for _ in 0..<70_000 { wakeup.wake() }
        try withBase { base in
            var handlerCalls = 0
            var turnsAfterHandler = 0
            do {
                // After the handler, let the backend look at the pipe on two more loop turns: a
                // zero-timeout timer fires once per turn, after that turn's poll.
                var stop: Event?
                stop = try Event(base: base) { _ in
                    turnsAfterHandler += 1
                    if turnsAfterHandler == 2 {
                        base.exit()
                    } else {
                        #expect(throws: Never.self) { try stop?.add(timeout: .zero) }
                    }
                }
                let event = try wakeup.makeEvent(on: base) {
                    handlerCalls += 1
                    #expect(throws: Never.self) { try stop?.add(timeout: .zero) }
                }
                let watchdog = try Watchdog(base, after: .seconds(20))
                try base.run()
                #expect(!watchdog.expired)
                withExtendedLifetime(event) {}
                stop = nil
            }
            // One drain empties the pipe, so a level-triggered backend does not call again.
            #expect(turnsAfterHandler == 2)
            #expect(handlerCalls == 1)
        }
    }

    @Test func wakesFromManyThreadsAreAllHarmless() throws {
        let wakeup = try LoopWakeup()
        let finished = Shared(0)
        let threads = 4
        try withBase { base in
            var handlerCalls = 0
            do {
                let watchdog = try Watchdog(base, after: .seconds(20))
                let event = try wakeup.makeEvent(on: base) {
                    handlerCalls += 1
                    if finished.value == threads { base.exit() }
                }
                for _ in 0..<threads {
                    Thread.detachNewThread {
                        for _ in 0..<1_000 { wakeup.wake() }
                        finished.update { $0 += 1 }
                        wakeup.wake()  // after the count, so the loop sees it
                    }
                }
                try base.run()
                #expect(!watchdog.expired)
                withExtendedLifetime(event) {}
            }
            #expect(handlerCalls >= 1)
        }
    }

    @Test func wakeupEventCanWakeAgainAfterDraining() throws {
        let wakeup = try LoopWakeup()
        try withBase { base in
            var handlerCalls = 0
            do {
                let watchdog = try Watchdog(base)
                let event = try wakeup.makeEvent(on: base) {
                    handlerCalls += 1
                    if handlerCalls == 1 {
                        wakeup.wake()  // from the loop thread itself, after the drain
                    } else {
                        base.exit()
                    }
                }
                wakeup.wake()
                try base.run()
                #expect(!watchdog.expired)
                withExtendedLifetime(event) {}
            }
            #expect(handlerCalls == 2)
        }
    }

    @Test func droppingTheWakeupEventCountsItFreed() throws {
        let wakeup = try LoopWakeup()
        try withBase { base in
            var event: Event? = try wakeup.makeEvent(on: base) {}
            #expect(base.counters.liveEvents.load(ordering: .relaxed) == 1)
            event = nil
            #expect(base.counters.liveEvents.load(ordering: .relaxed) == 0)
            wakeup.wake()  // nothing listens: the byte just sits in the pipe
            try base.run()  // no events: returns at once
            withExtendedLifetime(event) {}
        }
    }
}
