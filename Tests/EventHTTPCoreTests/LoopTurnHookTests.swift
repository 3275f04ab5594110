import EventHTTPCore
import Testing

/// LoopTurnHook: runs after the pass's callbacks, in the same pass, once per scheduling.
///
/// Each test asks the loop to exit (`event_base_loopexit`) from a callback of the first pass:
/// libevent then finishes that pass and returns from `run()`. So whatever ran before `run()`
/// returned ran in that pass; a hook left for a later pass would not have run at all.
@Suite struct LoopTurnHookTests {
    @Test("a hook scheduled from a callback runs after the callbacks already due, in the same pass, once")
    func afterDueCallbacks() throws {
        try withBase { base in
            var order: [String] = []
            let hook = try LoopTurnHook(base: base) { order.append("hook") }
            let first = try Event(base: base) { _ in
                order.append("first")
                hook.schedule()
                hook.schedule()
                base.exit()
            }
            let second = try Event(base: base) { _ in
                order.append("second")
                hook.schedule()
            }
            first.activate()
            second.activate()
            try base.run()
            #expect(order == ["first", "second", "hook"])
            withExtendedLifetime((first, second, hook)) {}
        }
    }

    @Test("a callback made active after the hook ran runs after it, and scheduling again runs the hook again in the same pass")
    func rescheduledInTheSamePass() throws {
        try withBase { base in
            var order: [String] = []
            var late: Event?
            let hook = try LoopTurnHook(base: base) {
                order.append("hook")
                if order.count == 2 { late?.activate() }
            }
            late = try Event(base: base) { _ in
                order.append("late")
                hook.schedule()
            }
            let first = try Event(base: base) { _ in
                order.append("first")
                hook.schedule()
                base.exit()
            }
            first.activate()
            try base.run()
            #expect(order == ["first", "hook", "late", "hook"])
            late = nil
            withExtendedLifetime((first, hook)) {}
        }
    }

    @Test("scheduled before run(), it runs in the first pass; dropped, it does not run")
    func beforeRunAndDropped() throws {
        try withBase { base in
            var ran: [String] = []
            let kept = try LoopTurnHook(base: base) {
                ran.append("kept")
                base.exit()
            }
            var dropped: LoopTurnHook? = try LoopTurnHook(base: base) { ran.append("dropped") }
            dropped?.schedule()
            kept.schedule()
            dropped = nil
            let watchdog = try Watchdog(base, after: .seconds(10))
            try base.run()
            #expect(!watchdog.expired)
            #expect(ran == ["kept"])
            withExtendedLifetime((kept, watchdog)) {}
        }
    }
}
