import EventHTTPCore
import Testing

/// A target that owns its ``LoopTimer``, as a pending request's state does.
private final class TimerOwner: EventTarget {
    var timer: LoopTimer?
    var fired: [(tag: Int, flags: EventFlags, at: ContinuousClock.Instant)] = []
    /// Called after each fire is recorded (drops the timer, re-arms, stops the loop).
    var onFire: ((TimerOwner) -> Void)?

    init(base: EventBase, tag: Int) throws {
        timer = try LoopTimer(base: base, target: self, tag: tag)
    }

    func eventFired(tag: Int, flags: EventFlags) {
        fired.append((tag, flags, .now))
        onFire?(self)
    }
}

@Suite("Embedded loop timers")
struct LoopTimerTests {
    @Test func firesOnceWithItsTagNeverBeforeTheInstant() throws {
        try withBase { base in
            let owner = try TimerOwner(base: base, tag: 7)
            let due = ContinuousClock.now + .milliseconds(15)
            try owner.timer?.schedule(at: due)
            #expect(owner.timer?.due == due)
            #expect(owner.timer?.isPending == true)
            // The timer is the only event: run() returns once it has fired.
            try base.run()
            #expect(owner.fired.count == 1)
            #expect(owner.fired.first?.tag == 7)
            #expect(owner.fired.first?.flags == .timeout)
            if let at = owner.fired.first?.at { #expect(at >= due, "fired \(due - at) early") }
            #expect(owner.timer?.due == nil)
            #expect(owner.timer?.isPending == false)
            owner.timer = nil
        }
    }

    @Test func cancelledTimerDoesNotFire() throws {
        try withBase { base in
            let owner = try TimerOwner(base: base, tag: 1)
            try owner.timer?.schedule(at: .now + .milliseconds(5))
            owner.timer?.cancel()
            #expect(owner.timer?.due == nil)
            #expect(owner.timer?.isPending == false)
            owner.timer?.cancel()  // twice is harmless
            let stop = try Event(base: base) { _ in }
            try stop.add(timeout: .milliseconds(30))
            try base.run()
            #expect(owner.fired.isEmpty)
            owner.timer = nil
        }
    }

    @Test func droppingThePendingTimerFreesItsEvent() throws {
        try withBase { base in
            let live = { base.counters.liveEvents.load(ordering: .relaxed) }
            let owner = try TimerOwner(base: base, tag: 1)
            #expect(live() == 1)
            try owner.timer?.schedule(at: .now + .milliseconds(5))
            owner.timer = nil  // as a close callback ends a greeting: the event leaves the loop
            #expect(live() == 0)
            // Nothing is left on the loop, so run() returns at once instead of firing.
            try base.run()
            #expect(owner.fired.isEmpty)
        }
    }

    @Test func targetMayDropItsTimerInsideTheCallback() throws {
        try withBase { base in
            let owner = try TimerOwner(base: base, tag: 3)
            owner.onFire = { $0.timer = nil }
            try owner.timer?.schedule(at: .now + .milliseconds(2))
            try base.run()
            #expect(owner.fired.count == 1)
            #expect(owner.timer?.due == nil && base.counters.liveEvents.load(ordering: .relaxed) == 0)
            #expect(base.counters.liveEvents.load(ordering: .relaxed) == 0)
        }
    }

    @Test func rescheduledFromItsCallbackItRepeatsOnTime() throws {
        try withBase { base in
            let watchdog = try Watchdog(base, after: .seconds(20))
            let owner = try TimerOwner(base: base, tag: 0)
            let start = ContinuousClock.now
            let tick = Duration.milliseconds(3)
            owner.onFire = { owner in
                if owner.fired.count == 4 { owner.timer = nil; base.exit(); return }
                try? owner.timer?.schedule(at: start + tick * (owner.fired.count + 1))
            }
            try owner.timer?.schedule(at: start + tick)
            try base.run()
            _ = watchdog
            #expect(!watchdog.expired)
            #expect(owner.fired.count == 4)
            for (n, fire) in owner.fired.enumerated() {
                #expect(fire.at >= start + tick * (n + 1), "tick \(n + 1) early")
            }
        }
    }

    @Test func pastInstantFiresOnTheNextTurn() throws {
        try withBase { base in
            let owner = try TimerOwner(base: base, tag: 2)
            try owner.timer?.schedule(at: .now - .seconds(1))
            try base.run()
            #expect(owner.fired.count == 1)
            owner.timer = nil
        }
    }
}
