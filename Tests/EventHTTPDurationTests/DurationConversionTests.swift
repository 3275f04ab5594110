import Testing
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one `Duration` → integer conversion: truncation toward zero, saturation, timer intervals.
@Suite struct DurationConversionTests {
    @Test("whole nanoseconds truncate toward zero, for either sign", arguments: [
        (Duration.nanoseconds(1_500), Int64(1_500)),
        (.seconds(3) + .nanoseconds(7), 3_000_000_007),
        (.milliseconds(-5), -5_000_000),
        (.seconds(-2) - .nanoseconds(1), -2_000_000_001),
        (.zero, 0),
    ])
    func wholeNanoseconds(_ duration: Duration, _ expected: Int64) {
        #expect(duration.wholeNanoseconds == expected)
        #expect(GoDuration(duration).nanoseconds == expected)
    }

    @Test("a sub-nanosecond remainder is dropped, not rounded")
    func subNanosecond() {
        let almostTwo = Duration.nanoseconds(2) - Duration(secondsComponent: 0, attosecondsComponent: 1)
        #expect(almostTwo.wholeNanoseconds == 1)
        #expect((.zero - almostTwo).wholeNanoseconds == -1)
    }

    @Test("spans beyond Go's ±292 years saturate instead of trapping")
    func saturates() {
        #expect(Duration.seconds(Int64.max).wholeNanoseconds == .max)
        #expect(Duration.seconds(Int64.min).wholeNanoseconds == .min)
        #expect(Duration.seconds(9_223_372_036).wholeNanoseconds == 9_223_372_036_000_000_000)
        #expect((Duration.seconds(9_223_372_036) + .milliseconds(900)).wholeNanoseconds == .max)
        #expect(GoDuration(.seconds(Int64.max)) == GoDuration(nanoseconds: .max))
    }

    @Test("the derived units and the round trip through GoDuration")
    func derivedUnits() {
        let span = Duration.seconds(2) + .microseconds(3_456) + .nanoseconds(789)
        #expect(span.wholeMicroseconds == 2_003_456)
        #expect(span.wholeMilliseconds == 2_003)
        #expect(Duration.milliseconds(1_500).secondsValue == 1.5)
        #expect(GoDuration(nanoseconds: 1_234_567).duration.wholeNanoseconds == 1_234_567)
    }

    @Test("timer intervals: microseconds below a second, rounded up so a timer is never early, negative is now",
          arguments: [
              (Duration.seconds(1), Int64(1), Int64(0)),
              (.milliseconds(1_500), 1, 500_000),
              (.nanoseconds(1), 0, 1),
              (.nanoseconds(999_999_001), 1, 0),
              (.microseconds(999_999), 0, 999_999),
              (.zero, 0, 0),
              (.milliseconds(-5), 0, 0),
              (.seconds(-3), 0, 0),
          ])
    func timerInterval(_ duration: Duration, _ seconds: Int64, _ microseconds: Int64) {
        let interval = duration.timerInterval
        #expect(interval.seconds == seconds)
        #expect(interval.microseconds == microseconds)
        if duration > .zero {
            #expect(Duration.seconds(interval.seconds) + .microseconds(interval.microseconds) >= duration)
        }
    }
}
