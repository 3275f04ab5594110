/// A one-shot timer that fires at an instant of `ContinuousClock`, never before it.
///
/// A plain ``Event`` timeout counts from the loop's cached time, which is as old as the current
/// loop turn (milliseconds, after a burst of work), and libevent's monotonic clock may be the
/// coarse one (`CLOCK_MONOTONIC_COARSE`, one tick per jiffy): such a timer can fire a millisecond
/// or more early. This timer refreshes the cached time before arming, rounds up to libevent's
/// microsecond, and, should it still fire early, arms again for what is left. So callers name
/// the instant they mean (`start + n × tick`) and never touch the loop's clock.
///
/// Ownership: owns its ``Event``; its target is held unowned and must own the timer.
///
/// Threading: loop-confined to its ``EventBase``.
public final class PunctualTimer: EventTarget {
    private var event: Event?
    private let base: EventBase
    private unowned let target: any EventTarget
    private let tag: Int
    /// The instant it fires at, while scheduled.
    public private(set) var due: ContinuousClock.Instant?

    /// A timer that calls `target.eventFired(tag:flags:)` (with `.timeout`) when due.
    public init(base: EventBase, target: any EventTarget, tag: Int) throws(LibeventError) {
        self.base = base
        self.target = target
        self.tag = tag
        event = try Event(base: base, target: self, tag: 0)
    }

    /// Fires at `instant` (at once, on the next loop turn, if it has passed). Replaces any
    /// earlier schedule.
    public func schedule(at instant: ContinuousClock.Instant) throws(LibeventError) {
        due = instant
        try arm(for: instant - .now)
    }

    /// Unschedules; safe when not scheduled.
    public func cancel() {
        due = nil
        event?.remove()
    }

    private func arm(for remaining: Duration) throws(LibeventError) {
        base.updateCachedTime()
        // Event.add rounds up to timeval's whole microsecond (Duration.timerInterval), so the
        // timeout is never short; a span already past is "now".
        try event?.add(timeout: max(remaining, .zero))
    }

    /// The underlying event fired: on time, or early, in which case wait for the rest.
    public func eventFired(tag: Int, flags: EventFlags) {
        guard let due else { return }
        let now = ContinuousClock.now
        if now < due {
            do {
                try arm(for: due - now)
                return
            } catch {
                // Cannot re-arm (out of memory): late is not possible, so fire now.
            }
        }
        self.due = nil
        target.eventFired(tag: self.tag, flags: .timeout)
    }
}
