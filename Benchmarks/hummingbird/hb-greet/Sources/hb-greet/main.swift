// hb-greet: greetd's async greeting on Hummingbird 2, the reference for Benchmarks/run.py.
//
//     hb-greet [--host 127.0.0.1] [--port 8080] [--threads N]
//
// `GET /?delay=D` sleeps D (a Go duration: 0s, 500ms, 60s, 2m) with `Task.sleep`, then answers
// `Hello Gopher!\n`; `delay` absent or zero answers at once. Nothing is logged per request.
// SIGINT or SIGTERM ends the process at once with exit code 0: the runner stops each server
// after its round, and the handlers still sleeping then (their clients gone) are not waited for.
import Dispatch
import Hummingbird
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One line on standard error (the runner's log of the server).
func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

func usage(_ message: String) -> Never {
    printError("hb-greet: \(message)\nusage: hb-greet [--host HOST] [--port PORT] [--threads N]")
    exit(2)
}

/// A Go duration with one of the suffixes ms, s or m (`0s`, `500ms`, `1.5s`, `2m`), or nil.
func parseDuration(_ text: Substring) -> Duration? {
    let units: [(String, Double)] = [("ms", 1e-3), ("s", 1), ("m", 60)]
    for (suffix, seconds) in units where text.hasSuffix(suffix) {
        guard let value = Double(text.dropLast(suffix.count)), value >= 0, value.isFinite else { return nil }
        return .nanoseconds(Int64((value * seconds * 1e9).rounded()))
    }
    return nil
}

struct Options: Sendable {
    var host = "127.0.0.1"
    var port = 8080
    var threads = System.coreCount

    init(_ arguments: [String]) {
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { usage("\(flag) needs a value") }
            switch flag {
            case "--host":
                host = value
            case "--port":
                guard let number = Int(value), (0...65535).contains(number) else { usage("--port: not a port: \(value)") }
                port = number
            case "--threads":
                guard let number = Int(value), number > 0 else { usage("--threads: not a positive number: \(value)") }
                threads = number
            default:
                usage("unknown option \(flag)")
            }
        }
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))

// Stop at once on SIGINT/SIGTERM (see the header).
/// Exits with 0 on SIGINT and SIGTERM. A nonisolated function: its handler runs on a Dispatch
/// queue, not the main actor that top-level code's closures would belong to.
func exitOnSignals() -> [any DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { signo in
        signal(signo, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
        source.setEventHandler { _exit(0) }
        source.resume()
        return source
    }
}

let signalSources = exitOnSignals()

var logger = Logger(label: "hb-greet")
logger.logLevel = .warning

/// `GET /?delay=D`. Made in a nonisolated function, so that no part of the handler belongs to
/// the main actor (top-level code's).
func makeRouter() -> Router<BasicRequestContext> {
    let router = Router()
    router.get("/") { request, _ -> String in
        if let text = request.uri.queryParameters["delay"] {
            guard let delay = parseDuration(text) else {
                throw HTTPError(.badRequest, message: "bad delay: \(text)")
            }
            if delay > .zero {
                try await Task.sleep(for: delay)
            }
        }
        return "Hello Gopher!\n"
    }
    return router
}

let app = Application(
    router: makeRouter(),
    configuration: .init(address: .hostname(options.host, port: options.port), serverName: nil),
    onServerRunning: { [host = options.host] channel in
        // The runner waits for the port to accept a connection; this line is for a person.
        printError("listening on \(host):\(channel.localAddress?.port ?? -1)")
    },
    eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup(numberOfThreads: options.threads)),
    logger: logger
)
try await app.runService(gracefulShutdownSignals: [])
withExtendedLifetime(signalSources) {}
