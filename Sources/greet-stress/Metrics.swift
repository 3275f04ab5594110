import GreetdClient
import GreetdRules
import EventHTTPSystem
import EventHTTPCore
import EventHTTPDuration
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The numbers greet-stress reads from greetd's `/metrics`.
struct MetricsSample: Equatable, Sendable {
    /// `greetd_requests_total{outcome="canceled"}` (``MetricName/requests``).
    var canceled: Int
    /// `greetd_requests_total{outcome="completed"}`.
    var completed: Int
    /// `greetd_requests_in_flight` (``MetricName/requestsInFlight``).
    var inFlight: Int
    /// `process_resident_memory_bytes`, where the server reports it.
    var residentBytes: Int?

    /// Reads Prometheus text exposition with GreetdRules' ``PrometheusText`` (the reader the
    /// tests use too).
    /// - Throws: ``MetricsProblem/notGreetd`` if `greetd_requests_in_flight` is missing. A
    ///   missing `greetd_requests_total` series counts as 0 (nothing ended that way yet).
    init(parsing text: String) throws(MetricsProblem) {
        let samples = PrometheusText.samples(in: text)
        func requests(_ outcome: MetricName.Outcome) -> Double {
            samples.value(of: MetricName.requests, labels: [MetricName.outcomeLabel: outcome.rawValue]) ?? 0
        }
        guard let inFlight = samples.value(of: MetricName.requestsInFlight) else { throw .notGreetd }
        canceled = Int(requests(.canceled))
        completed = Int(requests(.completed))
        self.inFlight = Int(inFlight)
        residentBytes = samples.value(of: MetricName.residentMemory).map { Int($0) }
    }
}

/// Why `/metrics` could not be read.
enum MetricsProblem: Error, CustomStringConvertible {
    /// Connecting, sending or reading failed.
    case io(LibeventError)
    /// No whole answer within the time limit.
    case timedOut(Duration)
    /// The server closed the connection before a whole answer.
    case closedEarly
    /// The answer was not `200`.
    case status(Int)
    /// The answer lacks greetd's metrics.
    case notGreetd

    var description: String {
        switch self {
        case .io(let error): return "\(error)"
        case .timedOut(let limit): return "no answer within \(GoDuration(limit))"
        case .closedEarly: return "the server closed the connection before a whole answer"
        case .status(let code): return "the server answered \(code)"
        case .notGreetd: return "no \(MetricName.requestsInFlight) in the answer (not greetd?)"
        }
    }

    /// What to do about it, appended to the message: a server that is not there is not
    /// reachable (no `--no-verify` would help); one that answers without greetd's metrics is
    /// not greetd (`--no-verify` skips the checks).
    func advice(for address: IPEndpoint) -> String {
        switch self {
        case .io(.callFailed(function: "connect", errno: let code?))
            where [Errno.connectionRefused, .timedOut, Errno(EHOSTUNREACH), Errno(ENETUNREACH)].contains(code):
            return "; the server is not reachable: is it running and listening on \(address)?"
        case .status, .notGreetd, .closedEarly:
            return " (use --no-verify for a server without greetd's /metrics)"
        case .io, .timedOut:
            return ""
        }
    }
}

/// One `GET /metrics` over HTTP/1.0 on the run's loop, with a time limit.
///
/// It never blocks the loop: load connections keep going while a read is on its way. The
/// completion runs once, on the loop thread, after the socket is closed; the owner may drop the
/// fetch from inside it.
///
/// Ownership: owns its socket and its timer. Threading: loop-confined.
final class MetricsFetch: ClientSocketDelegate, EventTarget {
    typealias Completion = (Result<MetricsSample, MetricsProblem>) -> Void

    private let request: [UInt8]
    private let limit: Duration
    private var completion: Completion?
    private var socket: ClientSocket?
    private var timer: Event?

    /// Starts the read. Throws if no socket can be made (then `completion` never runs).
    init(plan: StressPlan, address: IPEndpoint, base: EventBase, completion: @escaping Completion) throws(LibeventError) {
        request = plan.metricsRequestBytes
        limit = StressPlan.metricsTimeout
        self.completion = completion
        let timer = try Event(base: base, target: self, tag: 0)
        try timer.add(timeout: limit)
        self.timer = timer
        socket = try ClientSocket(connectingTo: address, base: base, timeout: limit, delegate: self)
    }

    deinit {
        socket?.close()
    }

    func clientSocket(_ socket: ClientSocket, didReport event: ClientSocketEvent) {
        switch event {
        case .connected:
            do throws(LibeventError) {
                try socket.send(request)
            } catch {
                finish(.failure(.io(error)))
            }
        case .sent:
            break
        case .received, .closedByPeer:
            if socket.response.isComplete {
                finish(Self.result(of: socket.response))
            } else if event == .closedByPeer {
                finish(.failure(.closedEarly))
            }
        case .failed(let error):
            finish(.failure(.io(error)))
        }
    }

    /// The time limit.
    func eventFired(tag: Int, flags: EventFlags) {
        finish(.failure(.timedOut(limit)))
    }

    private static func result(of response: HTTPResponseBuffer) -> Result<MetricsSample, MetricsProblem> {
        guard response.status == 200 else { return .failure(.status(response.status ?? 0)) }
        do throws(MetricsProblem) {
            return .success(try MetricsSample(parsing: String(decoding: response.body, as: UTF8.self)))
        } catch {
            return .failure(error)
        }
    }

    private func finish(_ result: Result<MetricsSample, MetricsProblem>) {
        guard let completion else { return }
        self.completion = nil
        socket?.close()
        timer = nil
        completion(result)
    }
}
