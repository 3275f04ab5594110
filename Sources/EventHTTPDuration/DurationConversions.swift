// The one conversion from Swift's `Duration` to integers. Every place that hands a span to C
// (timers, `poll`), to metrics or to a report goes through `wholeNanoseconds` and the units
// derived from it here, so truncation and overflow are decided once.

extension Duration {
    /// The span in whole nanoseconds, truncated toward zero, clamped to `Int64.min...Int64.max`
    /// (about ±292 years, Go's `time.Duration` range).
    ///
    /// `Duration.components` splits a span into seconds and attoseconds of the same sign
    /// (-5 ms is `(0, -5e15)`), so dropping the attoseconds below a nanosecond truncates toward
    /// zero for either sign.
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }

    /// The span in whole microseconds (``wholeNanoseconds`` / 1000, truncated toward zero).
    public var wholeMicroseconds: Int64 { wholeNanoseconds / 1_000 }

    /// The span in whole milliseconds (``wholeNanoseconds`` / 1,000,000, truncated toward zero).
    public var wholeMilliseconds: Int64 { wholeNanoseconds / 1_000_000 }

    /// The span in seconds as a `Double` (from ``wholeNanoseconds``), for rates and reports.
    public var secondsValue: Double { Double(wholeNanoseconds) / 1e9 }

    /// The span as a timer interval, in the shape of a C `timeval`: whole seconds and the
    /// microseconds below them (`0..<1_000_000`). Rounded up to the microsecond, so that a timer
    /// (a deadline above all) never fires before its time; a negative span is "now" (zero): a
    /// timer cannot be due in the past, and a negative `tv_usec` makes libevent abort.
    public var timerInterval: (seconds: Int64, microseconds: Int64) {
        let nanoseconds = Swift.max(0, wholeNanoseconds)
        let micros = nanoseconds / 1_000 + (nanoseconds % 1_000 == 0 ? 0 : 1)
        return (micros / 1_000_000, micros % 1_000_000)
    }
}
