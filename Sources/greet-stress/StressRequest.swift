import GreetdClient
import EventHTTPCore

/// How one request ended, as the summary counts it.
enum RequestOutcome: Equatable, Sendable {
    /// A whole `200` response arrived (whether or not the request meant to abort).
    case completed
    /// The client gave up before any response byte arrived.
    case aborted(ClientAbort)
    /// Anything else, by name: an errno name (`ECONNREFUSED`, `ETIMEDOUT`, `ECONNRESET`),
    /// `status_<code>`, `server_closed`, `partial_response`, `cut_by_deadline`; with `--stream`
    /// also `not_event_stream`, `stream_without_greeting`, `stream_error: <data>`.
    case error(String)
}

/// One request of a run, from its connect to the close of its socket.
///
/// ## States
/// `connecting` → `sending` → `waiting` (for its abort time, or for the response) → `ended`;
/// an abort with ``ClientAbort/half`` passes through `lingering` (the sending side is shut and the
/// socket reads until the server closes it) before the socket is closed.
///
/// The outcome is recorded once (``LoadRun/requestFinished(_:)``), when it is known: at the abort,
/// at a complete response, at a failure. The connection slot is released later, when the socket
/// is closed (``LoadRun/requestReleased(_:)``); for a half-close that is when the server closes.
///
/// With `--stream`, every read also feeds the body to a ``GreetingStream`` and hands its events
/// to ``LoadRun/eventReceived(_:)``, in every phase (a lingering half-close too). An aborting
/// request aborts even after the head and thinking events arrived, but not once a greeting or
/// error event has: then the server's work is over and the stream's end is awaited instead.
///
/// Ownership: ``LoadRun`` owns every live request; a request owns its socket and its timer, and
/// is their delegate and target. Threading: loop-confined.
final class StressRequest: ClientSocketDelegate, EventTarget {
    private enum Phase {
        case connecting, sending, waiting, lingering, ended
    }

    /// 0-based; the request id is `stress-<number + 1>`.
    let number: Int
    let intent: RequestIntent
    private unowned let run: LoadRun
    private var socket: ClientSocket?
    /// The abort timer while waiting, the linger limit while lingering.
    private var timer: Event?
    private var phase = Phase.connecting
    private var released = false
    /// The events read so far (`--stream` only).
    private var stream = GreetingStream()

    init(number: Int, intent: RequestIntent, run: LoadRun) {
        self.number = number
        self.intent = intent
        self.run = run
    }

    deinit {
        socket?.close()
    }

    /// Starts connecting. Throws what ``ClientSocket/init(connectingTo:base:timeout:delegate:)``
    /// throws (`EMFILE`, `EADDRNOTAVAIL`, ...); then nothing is open.
    func start(to address: IPEndpoint, base: EventBase) throws(LibeventError) {
        socket = try ClientSocket(connectingTo: address, base: base, timeout: run.plan.connectTimeout, delegate: self)
    }

    func clientSocket(_ socket: ClientSocket, didReport event: ClientSocketEvent) {
        switch (event, phase) {
        case (.connected, .connecting):
            phase = .sending
            run.requestConnected()
            do throws(LibeventError) {
                if try socket.send(run.plan.requestBytes(for: number)) { requestSent() }
            } catch {
                end(.error(errorName(error)))
            }
        case (.sent, .sending):
            requestSent()
        case (.received, .sending), (.received, .waiting):
            readEvents(socket.response)
            if socket.response.isComplete { end(outcome(of: socket.response)) }
        case (.received, .lingering):
            readEvents(socket.response)
        case (.closedByPeer, .sending), (.closedByPeer, .waiting):
            readEvents(socket.response)
            if socket.response.isComplete {
                end(outcome(of: socket.response))
            } else {
                end(.error(socket.response.isEmpty ? "server_closed" : "partial_response"))
            }
        case (.failed(let error), .connecting), (.failed(let error), .sending), (.failed(let error), .waiting):
            end(.error(errorName(error)))
        case (.closedByPeer, .lingering), (.failed, .lingering):
            // The server closed the half-closed connection: the expected end of a half-close.
            // Some servers answer first (Go's net/http with the tutorial's handler: a 500 with
            // "context canceled"); that is a policy, not a fault, so it is only reported. A
            // stream had its head before the abort: only a stream the server then ended counts.
            readEvents(socket.response)
            if run.plan.stream {
                if socket.response.isComplete { run.noteHalfCloseAnswer("stream_ended") }
            } else if !socket.response.isEmpty {
                run.noteHalfCloseAnswer(socket.response.status.map { "status_\($0)" } ?? "partial_response")
            }
            release()
        default:
            break
        }
    }

    /// The abort timer or the linger limit.
    func eventFired(tag: Int, flags: EventFlags) {
        switch phase {
        case .waiting:
            guard case .abort(let style, _) = intent else { return }
            giveUp(style)
        case .lingering:
            run.noteHalfCloseLeftOpen()
            release()
        default:
            break
        }
    }

    /// `--duration` ran out: abort now (with a FIN, so that nothing lingers), or drop a request
    /// that was never fully sent.
    func cutOff() {
        switch phase {
        case .connecting, .sending:
            end(.error("cut_by_deadline"))
        case .waiting:
            giveUp(.fin)
        case .lingering:
            release()
        case .ended:
            break
        }
    }

    private func requestSent() {
        phase = .waiting
        guard case .abort(_, let after) = intent else { return }
        arm(after: after)
    }

    /// Aborts, unless a response is already in the kernel's buffer: a response that arrived
    /// before the abort time counts as completed.
    private func giveUp(_ style: ClientAbort) {
        guard let socket else { return }
        socket.receiveNow()
        guard phase == .waiting else { return }  // the response completed, or the stream ended
        readEvents(socket.response)
        if run.plan.stream, stream.end != nil { return }  // the stream is over: await its end
        guard socket.response.isEmpty || isStreaming(socket.response) else {
            end(.error("partial_response"))
            return
        }
        run.requestFinished(.aborted(style))
        socket.abort(style)
        if socket.state == .halfClosed {
            phase = .lingering
            arm(after: run.plan.lingerLimit)
        } else {
            phase = .ended
            release()
        }
    }

    private func end(_ outcome: RequestOutcome) {
        phase = .ended
        run.requestFinished(outcome)
        release()
    }

    /// Closes the socket (if still open) and gives the connection slot back, once.
    private func release() {
        phase = .ended
        timer = nil
        socket?.close()
        guard !released else { return }
        released = true
        run.requestReleased(self)
    }

    private func arm(after delay: Duration) {
        do throws(LibeventError) {
            if timer == nil { timer = try Event(base: run.base, target: self, tag: 0) }
            try timer?.add(timeout: delay)
        } catch {
            run.fail("cannot arm a timer: \(error)")
        }
    }

    private func outcome(of response: HTTPResponseBuffer) -> RequestOutcome {
        guard response.status == 200 else { return .error("status_\(response.status ?? 0)") }
        guard run.plan.stream else { return .completed }
        guard GreetingStream.isEventStream(response) else { return .error("not_event_stream") }
        switch stream.end {
        case let event? where event.type == GreetingStream.greeting: return .completed
        case let event?: return .error("stream_\(event.type): \(event.data)")
        case nil: return .error("stream_without_greeting")
        }
    }

    /// `--stream`, and the response so far is the head of a 200 event stream (and maybe events):
    /// an abort now is an abort mid-stream, not a race with the answer.
    private func isStreaming(_ response: HTTPResponseBuffer) -> Bool {
        run.plan.stream && response.status == 200 && GreetingStream.isEventStream(response)
    }

    /// Hands the events that arrived to the run (`--stream` only).
    private func readEvents(_ response: HTTPResponseBuffer) {
        guard run.plan.stream else { return }
        for event in stream.read(response) { run.eventReceived(event) }
    }
}

/// The name a failure is counted under: the errno's symbolic name when there is one.
func errorName(_ error: LibeventError) -> String {
    switch error {
    case .callFailed(_, let code?): return code.name
    case .callFailed(let function, nil): return "\(function)_failed"
    case .allocationFailed(let function): return "\(function)_failed"
    case .addressResolution: return "address_resolution"
    case .bind(_, let code): return code.name
    }
}
