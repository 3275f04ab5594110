import GreetdRules
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// When a greeting thinks and when it answers: the one rule every greeting follows (the timer
/// greeting, ``Greeting``; the async and streaming ones, ``AsyncGreeting``).
///
/// - Tick `n` (1-based) falls due at `start + n × tick`, never before.
/// - The answer is due at `start + delay`.
/// - The ticks due by the delay (``ticksDue`` = ⌊delay / tick⌋) are all logged before the
///   answer, even if the loop was late: `--delay 2s --tick 400ms` thinks 5 times, the defaults
///   (5s, 1s) 5 times, as the seed does.
///
/// A value; loop-confined only by the greeting that holds it.
struct ThinkingSchedule {
    /// When the greeting started (the request's arrival).
    let start: ContinuousClock.Instant
    /// The time between two ticks (`--tick`).
    let tick: Duration
    /// When the answer is due.
    let finish: ContinuousClock.Instant
    /// Ticks that fall due within the delay: all of them are logged before the answer.
    let ticksDue: Int

    init(start: ContinuousClock.Instant, delay: GoDuration, tick: GoDuration) {
        self.start = start
        self.tick = tick.duration
        self.finish = start + delay.duration
        self.ticksDue = Int(delay.nanoseconds / tick.nanoseconds)
    }

    /// When tick `n` (1-based) falls due.
    func tickInstant(_ n: Int) -> ContinuousClock.Instant { start + tick * n }

    /// Whether, with `logged` ticks logged so far, the next one is due by `now`.
    func nextTickIsDue(logged: Int, by now: ContinuousClock.Instant) -> Bool {
        logged < ticksDue && tickInstant(logged + 1) <= now
    }

    /// When to wake next, with `logged` ticks logged: the next tick, or the answer.
    func nextWake(logged: Int) -> ContinuousClock.Instant {
        min(tickInstant(logged + 1), finish)
    }
}
