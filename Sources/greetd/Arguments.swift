import ArgumentParser
import GreetdCore
import GreetdRules
import Logging
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// How the command line's values are read before `GreetdConfiguration.validate()` judges them.
//
// Every numeric and duration option is parsed with `.unconditional`: swift-argument-parser would
// otherwise take a value that begins with `-` (`--delay -1s`, `--port -1`) for an option and say
// "Missing value", when the real problem is the value. Read unconditionally, it reaches
// validation, which names the option and the rule (`delay must not be negative, got -1s`).

/// Log levels as `--log-level` spells them: in any case (`INFO`), and `warn` for `warning`
/// (the spelling of Go's slog, logrus and zap, which operators type by habit).
enum LogLevelOption: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical

    init?(argument: String) {
        let word = argument.lowercased()
        self.init(rawValue: word == "warn" ? "warning" : word)
    }

    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

/// `--log-format`: a wrapper, so that GreetdRules' enum needs no retroactive conformance.
enum LogFormatOption: String, ExpressibleByArgument, CaseIterable {
    case text, json

    init?(argument: String) {
        self.init(rawValue: argument.lowercased())
    }

    var format: LogOutputFormat { self == .json ? .json : .text }
}

/// `--access-log stderr|off|PATH`; an empty value is refused (it names no file).
func parseAccessLog(_ text: String) throws -> AccessLogDestination {
    try refuseOption(text)
    guard let destination = AccessLogDestination(argument: text) else {
        throw ValidationError("--access-log is empty; give stderr, off, or a file's path")
    }
    return destination
}

/// A Go duration (`250ms`, `1.5s`, `-1s`), or a usage error with Go's reason.
func parseDuration(_ text: String) throws -> GoDuration {
    try refuseOption(text)
    do {
        return try GoDuration(parsing: text)
    } catch {
        throw ValidationError("\(error)")
    }
}

/// A whole number, negative ones included (validation judges the range), or a usage error.
func parseInteger(_ text: String) throws -> Int {
    try refuseOption(text)
    guard let value = Int(text) else { throw ValidationError("expected a whole number, got '\(text)'") }
    return value
}

/// A value read unconditionally may be the next option (`--delay --tick 1s`): say that the value
/// is missing rather than calling `--tick` a bad duration. A single `-` prefix is a negative
/// number or duration and goes on to validation.
private func refuseOption(_ text: String) throws {
    if text.hasPrefix("--") { throw ValidationError("the value is missing ('\(text)' is the next option)") }
}

/// The checks `GreetdConfiguration.validate()` cannot make because the command line shapes the
/// value first (`0` becomes "none", the port is narrowed to 16 bits).
func validateCommandLine(host: String, port: Int, headerTimeout: GoDuration, idleTimeout: GoDuration) throws {
    // getaddrinfo() reads an empty host as "every interface" (AI_PASSIVE): a typo or an unset
    // shell variable must not expose the server.
    if host.isEmpty {
        throw ValidationError(GreetdConfiguration.emptyHostMessage)
    }
    guard (0...Int(UInt16.max)).contains(port) else {
        throw ValidationError("--port must be between 0 and 65535 (0 picks a free one), got \(port)")
    }
    guard headerTimeout.nanoseconds >= 0 else {
        throw ValidationError("header-timeout must not be negative (0 means none), got \(headerTimeout)")
    }
    guard idleTimeout.nanoseconds >= 0 else {
        throw ValidationError("idle-timeout must not be negative (0 means none), got \(idleTimeout)")
    }
}
