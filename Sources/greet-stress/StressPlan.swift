import GreetdClient
import EventHTTPCore

/// `--abort-style`: one way for every aborting request, or a random one per request.
enum AbortStyleChoice: String, CaseIterable, Sendable {
    case fin, rst, half, mix

    /// The style for one request.
    func pick(using generator: inout some RandomNumberGenerator) -> ClientAbort {
        switch self {
        case .fin: return .fin
        case .rst: return .rst
        case .half: return .half
        case .mix: return ClientAbort.allCases.randomElement(using: &generator)!
        }
    }
}

/// What one request sets out to do.
enum RequestIntent: Equatable, Sendable {
    /// Give up `after` the request was fully sent, the way `style` says.
    case abort(ClientAbort, after: Duration)
    /// Wait for the response.
    case complete
}

/// Everything a run needs, validated: the command line turned into values.
struct StressPlan: Sendable {
    var host = "127.0.0.1"
    var port: UInt16 = 8080
    var connections = 100
    var requests = 1000
    /// New connections per second; 0: as fast as `connections` allows.
    var rate = 0.0
    var abortWindow: AbortWindow
    var abortStyle = AbortStyleChoice.mix
    var completeFraction = 0.0
    var path = "/?delay=2s"
    var duration: Duration = .seconds(60)
    var settle: Duration = .seconds(5)
    var json = false
    var metricsPath = "/metrics"
    var verify = true
    /// `--stream`: ask for the streaming greeting (`Accept: text/event-stream`) and read its
    /// events while waiting.
    var stream = false
    /// Seeds every random choice (abort time and style per request): the same seed gives the
    /// same plan, whatever the timing.
    var seed: UInt64 = 0

    /// How long a connect may take before it counts as `ETIMEDOUT`.
    var connectTimeout: Duration { min(.seconds(5), duration) }
    /// How long a half-closed connection waits for the server to close it.
    var lingerLimit: Duration { max(settle, .seconds(1)) }
    /// How long one `/metrics` read may take.
    static let metricsTimeout: Duration = .seconds(2)

    /// `Host:` as a client writes it: IPv6 literals go in brackets.
    var hostHeader: String { host.contains(":") ? "[\(host)]" : host }

    /// The intent of request `number` (0-based). Completing requests are spread evenly, so that
    /// exactly `floor(requests × completeFraction)` of them complete.
    func intent(for number: Int) -> RequestIntent {
        if Int(Double(number + 1) * completeFraction) > Int(Double(number) * completeFraction) { return .complete }
        var generator = SplitMix64(seed: seed &+ UInt64(number) &* 0x9E37_79B9_7F4A_7C15)
        return .abort(abortStyle.pick(using: &generator), after: abortWindow.random(using: &generator))
    }

    /// The request bytes for request `number` (0-based; its id is `stress-<number + 1>`).
    func requestBytes(for number: Int) -> [UInt8] {
        Array(("GET \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nX-Request-Id: stress-\(number + 1)\r\n"
               + (stream ? "Accept: text/event-stream\r\n" : "") + "Connection: close\r\n\r\n").utf8)
    }

    /// The `/metrics` request: HTTP/1.0, so that the server closes after the answer.
    var metricsRequestBytes: [UInt8] {
        Array("GET \(metricsPath) HTTP/1.0\r\nHost: \(hostHeader)\r\n\r\n".utf8)
    }
}

