import EventHTTPCore
import Testing

@Suite("Event timers")
struct EventTimerTests {
    @Test func oneShotTimerFiresOnceWithTimeout() throws {
        try withBase { base in
            var fired: [EventFlags] = []
            do {
                let timer = try Event(base: base) { fired.append($0) }
                try timer.add(timeout: .milliseconds(2))
                #expect(timer.isPending)
                // The timer is the only event: run() returns once it has fired.
                try base.run()
                #expect(!timer.isPending)
            }
            #expect(fired == [.timeout])
        }
    }

    @Test func persistentTimerRepeatsUntilExit() throws {
        try withBase { base in
            var ticks: [EventFlags] = []
            do {
                let watchdog = try Watchdog(base, after: .seconds(20))
                let ticker = try Event(base: base, flags: .persist) { flags in
                    ticks.append(flags)
                    if ticks.count == 3 { base.exit() }
                }
                try ticker.add(timeout: .milliseconds(2))
                try base.run()
                #expect(!watchdog.expired)
                // A persistent timer is still armed after the loop stops.
                #expect(ticker.isPending)
            }
            #expect(ticks.count == 3, "ticks: \(ticks.count)")
            #expect(ticks.allSatisfy { $0 == .timeout })
        }
    }

    @Test func removeStopsAPendingTimer() throws {
        try withBase { base in
            var fired = 0
            var stopped = false
            do {
                let timer = try Event(base: base) { _ in fired += 1 }
                let stop = try Event(base: base) { _ in stopped = true }
                #expect(!timer.isPending)
                try timer.add(timeout: .milliseconds(5))
                #expect(timer.isPending)
                timer.remove()
                #expect(!timer.isPending)
                timer.remove()  // removing twice is harmless
                #expect(!timer.isPending)
                try stop.add(timeout: .milliseconds(20))
                try base.run()
            }
            #expect(stopped)
            #expect(fired == 0)
        }
    }

    @Test func removedTimerCanBeArmedAgain() throws {
        try withBase { base in
            var fired: [EventFlags] = []
            do {
                let timer = try Event(base: base) { fired.append($0) }
                try timer.add(timeout: .seconds(60))
                timer.remove()
                try timer.add(timeout: .milliseconds(1))
                try base.run()
            }
            #expect(fired == [.timeout])
        }
    }

    @Test func addingAgainReschedulesInsteadOfDuplicating() throws {
        try withBase { base in
            var fired = 0
            do {
                let timer = try Event(base: base) { _ in fired += 1 }
                try timer.add(timeout: .seconds(60))
                try timer.add(timeout: .milliseconds(1))
                try base.run()  // would block for a minute if the first timeout still held
            }
            #expect(fired == 1)
        }
    }

    @Test func zeroTimeoutFiresOnNextIteration() throws {
        try withBase { base in
            var fired: [EventFlags] = []
            do {
                let timer = try Event(base: base) { fired.append($0) }
                try timer.add(timeout: .zero)
                try base.run()
            }
            #expect(fired == [.timeout])
        }
    }

    @Test func runReturnsWhenNoEventsRemain() throws {
        try withBase { base in
            var order: [String] = []
            do {
                let first = try Event(base: base) { _ in order.append("first") }
                let second = try Event(base: base) { _ in order.append("second") }
                try first.add(timeout: .milliseconds(1))
                try second.add(timeout: .milliseconds(3))
                try base.run()
                order.append("returned")
            }
            #expect(order == ["first", "second", "returned"])
        }
    }

    @Test func exitStopsRunAfterCurrentCallbacks() throws {
        try withBase { base in
            var fired = 0
            do {
                let exiting = try Event(base: base) { _ in
                    fired += 1
                    base.exit()
                }
                let later = try Event(base: base) { _ in fired += 100 }
                try exiting.add(timeout: .milliseconds(1))
                try later.add(timeout: .seconds(60))
                try base.run()
                #expect(later.isPending)
            }
            #expect(fired == 1)
        }
    }

    @Test func droppingOneShotTimerInsideItsHandlerIsSafe() throws {
        try withBase { base in
            var fired = 0
            var timer: Event?
            timer = try Event(base: base) { _ in
                fired += 1
                timer = nil  // the last reference: the event is freed inside its own callback
            }
            try timer?.add(timeout: .milliseconds(1))
            #expect(base.counters.liveEvents.load(ordering: .relaxed) == 1)
            try base.run()
            #expect(timer == nil)
            #expect(fired == 1)
            #expect(base.counters.liveEvents.load(ordering: .relaxed) == 0)
        }
    }

    @Test func droppingPersistentTimerInsideItsHandlerIsSafe() throws {
        try withBase { base in
            var fired = 0
            var ticker: Event?
            ticker = try Event(base: base, flags: .persist) { _ in
                fired += 1
                // libevent has already re-armed the persistent timer; freeing it must unarm it,
                // so run() returns because no event remains.
                ticker = nil
            }
            try ticker?.add(timeout: .milliseconds(1))
            try base.run()
            #expect(ticker == nil)
            #expect(fired == 1)
            #expect(base.counters.liveEvents.load(ordering: .relaxed) == 0)
        }
    }

    @Test func droppingAnotherPendingEventFromAHandlerCancelsIt() throws {
        try withBase { base in
            var victimFired = false
            var victim: Event? = try Event(base: base) { _ in victimFired = true }
            do {
                let killer = try Event(base: base) { _ in victim = nil }
                try victim?.add(timeout: .milliseconds(10))
                try killer.add(timeout: .milliseconds(1))
                try base.run()
            }
            #expect(victim == nil)
            #expect(!victimFired)
            #expect(base.counters.liveEvents.load(ordering: .relaxed) == 0)
        }
    }

    @Test func negativeOneShotTimeoutFiresAtOnce() throws {
        try withBase { base in
            var fired: [EventFlags] = []
            do {
                let timer = try Event(base: base) { fired.append($0) }
                try timer.add(timeout: .milliseconds(-1500))
                try base.run()
            }
            #expect(fired == [.timeout])
        }
    }

    /// libevent re-arms a persistent timer only for a non-zero interval, so `.persist` with a
    /// zero timeout fires once and then leaves the loop with no events.
    @Test func persistentTimerWithZeroIntervalFiresOnce() throws {
        try withBase { base in
            var ticks = 0
            do {
                let ticker = try Event(base: base, flags: .persist) { _ in ticks += 1 }
                try ticker.add(timeout: .zero)
                try base.run()
                #expect(!ticker.isPending)
            }
            #expect(ticks == 1)
        }
    }

    /// A negative interval of a second or more is clamped to zero: same as above.
    @Test func persistentTimerWithNegativeWholeSecondsActsAsZero() throws {
        try withBase { base in
            var ticks = 0
            do {
                let ticker = try Event(base: base, flags: .persist) { _ in ticks += 1 }
                try ticker.add(timeout: .milliseconds(-1500))
                try base.run()
            }
            #expect(ticks == 1)
        }
    }

    // A negative duration above -1 s, e.g. `.milliseconds(-5)`, has components (seconds: 0,
    // attoseconds: < 0). It used to become a negative tv_usec, which made libevent abort in
    // event_persist_closure on a persistent event. It must act as zero.
    @Test
    func persistentTimerWithSubSecondNegativeTimeoutActsAsZero() throws {
        try withBase { base in
            var ticks = 0
            do {
                let ticker = try Event(base: base, flags: .persist) { _ in ticks += 1 }
                try ticker.add(timeout: .milliseconds(-5))
                try base.run()
            }
            #expect(ticks == 1)
        }
    }

    @Test func eventFlagsDescription() {
        #expect(EventFlags.timeout.description == "timeout")
        #expect(EventFlags([.read, .closed]).description == "read|closed")
        #expect(EventFlags([.persist, .write, .read]).description == "read|write|persist")
        #expect(EventFlags().description == "")
    }
}
