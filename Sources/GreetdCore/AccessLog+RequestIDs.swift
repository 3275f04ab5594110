/// The ids greetd gives requests that bring no sane `X-Request-Id` of their own:
/// `<process prefix>-<number>`, e.g. `7f3a9c21-42`.
///
/// The number alone restarts at 1 in every process, so after a restart (or in a second replica)
/// two requests in the same log store would share an id; the prefix, 32 random bits drawn once
/// per process, tells the processes apart. The workers of one process share the numbering (the
/// ``WorkerGroup``), so the number tells its requests apart. The id stays within
/// `acceptableRequestID`'s alphabet, so it can be passed on as an `X-Request-Id`.
public enum GeneratedRequestID {
    /// Eight lowercase hex digits, drawn from the system's random source once per process.
    public static let processPrefix: String = {
        var generator = SystemRandomNumberGenerator()
        let bits = UInt32.random(in: .min ... .max, using: &generator)
        let hex = String(bits, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }()

    /// The id of request `number`: `<processPrefix>-<number>`.
    public static func make(_ number: UInt64) -> String {
        "\(processPrefix)-\(number)"
    }
}
