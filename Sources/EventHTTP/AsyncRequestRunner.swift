/// Why a handler's request was answered `500` (or its stream ended early) by the runner.
public enum HandlerFailure: Sendable, CustomStringConvertible {
    /// The handler threw `error` (not a ``ResponseError/clientGone(_:)``, nor a cancellation
    /// after its client left: those are the client's doing, and not reported).
    case threw(any Error)
    /// The handler returned without answering.
    case returnedWithoutAnswer

    public var description: String {
        switch self {
        case .threw(let error): return "handler threw: \(error)"
        case .returnedWithoutAnswer: return "handler returned without answering"
        }
    }
}

/// Runs async handlers for an `LoopResponder`: each request handed to ``run(_:onClientAbort:handler:)``
/// gets a Task on the loop's `LoopExecutor`, cancelled when its client goes away.
///
/// The responder keeps its own job (naming requests, the access log, metrics) and forwards two
/// calls: ``run(_:onClientAbort:handler:)`` from its `handle`, and ``requestEnded(_:_:)`` from its
/// `requestEnded` (that is how the runner learns of an abort: the server reports
/// `RequestEnd.aborted(_:)` once, and the runner cancels that request's Task once).
///
/// How a handler runs: `Task(executorPreference: executor)`, no actor isolation. Its nonisolated
/// code runs on the loop thread between libevent callbacks; `await`s on other executors (a
/// `Task.sleep` on the global executor, an actor) come back to the loop. Cancellation is Swift's:
/// `Task.isCancelled`, `withTaskCancellationHandler` and every cancellable await see it.
///
/// After the handler returns or throws, the runner:
/// - answers `500` if nothing was answered and the client is still there, and reports
///   ``HandlerFailure`` through ``onHandlerFailure``;
/// - ends a stream left open (and reports a throw that ended it).
/// `defer` blocks and cleanup run in every case, cancelled or not.
///
/// Threading: loop-confined. `Sendable` only because each Task tells the runner it ended; it
/// does so on the loop thread, checked.
///
/// Ownership: the runner holds each running handler's ``AsyncRequest`` (which holds its Task's
/// handle) until the Task ends; the Task holds the runner (through its response and request). The owner shuts the executor down only once ``runningCount`` is 0
/// (see ``onIdle``).
public final class AsyncRequestRunner: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is touched on `executor.thread` only, checked by
    // `preconditionOnThread` in each entry point; `executor` is immutable and Sendable.
    /// The loop the handlers run on.
    public let executor: LoopExecutor
    /// A stream's write waits while its connection holds more than this many bytes.
    /// Default 64 KiB.
    public var highWatermark = 64 * 1024 {
        didSet { watermarks = StreamWatermarks(high: highWatermark, low: lowWatermark) }
    }
    /// ... until the connection's queue drains to this many bytes. Default 16 KiB.
    public var lowWatermark = 16 * 1024 {
        didSet { watermarks = StreamWatermarks(high: highWatermark, low: lowWatermark) }
    }
    /// The two above, as the responses started from now on keep them.
    private var watermarks = StreamWatermarks(high: 64 * 1024, low: 16 * 1024)
    /// The reasons given to ``cancelAll(reason:)`` that cancelled a handler, in order (a request
    /// keeps the number of its own: ``AsyncRequest/shutdownReasonNumber``).
    private(set) var shutdownReasons: [String] = []
    /// Called on the loop thread when a handler failed: it threw, or returned without
    /// answering. The request was answered `500` if it still could be. Log it here.
    public var onHandlerFailure: ((RequestHead, HandlerFailure) -> Void)?
    /// Called on the loop thread each time the last running handler ends.
    public var onIdle: (() -> Void)?
    /// Each running handler's request, which holds its Task and policy.
    private var running: [UInt64: AsyncRequest] = [:]

    /// A runner for handlers on `executor`'s loop. Loop thread only.
    public init(executor: LoopExecutor) {
        executor.thread.preconditionOnThread()
        self.executor = executor
    }

    /// Handlers started and not yet ended.
    public var runningCount: Int {
        executor.thread.preconditionOnThread()
        return running.count
    }

    /// Starts `handler` for `request` as a Task on the loop (it first runs on a later loop
    /// turn, after the responder's `handle` returned). Call it from the responder's `handle`:
    /// it arms the request's abort watch (`LoopRequest.watchForAbort()`) now. If that fails,
    /// the request is answered `503` at once and no Task starts.
    public func run(_ request: LoopRequest, onClientAbort: ClientAbortPolicy = .cancel, handler: @escaping AsyncHandler) {
        executor.thread.preconditionOnThread()
        precondition(request.isPending, "AsyncRequestRunner.run: the request was already answered")
        if !request.isWatched {
            do {
                try request.watchForAbort()
            } catch {
                request.respond(status: 503, body: "cannot watch the connection: \(error)\n")
                return
            }
        }
        let asyncRequest = AsyncRequest(request, runner: self, abortPolicy: onClientAbort, handler: handler)
        let response = AsyncResponse(request: asyncRequest, watermarks: watermarks)
        // The closure captures the response alone, which reaches the rest (request, runner,
        // handler): a closure whose one capture is an object has that object as its context,
        // with no context of its own to allocate. It calls the handler itself, with no method in
        // between: each async layer is a frame in the Task's allocator for as long as the
        // handler is pending, and frames past the first slab's capacity cost another 1 KB slab.
        asyncRequest.task = Task(executorPreference: executor) { [response] in
            let request = response.request
            var failure: (any Error)?
            do {
                try await request.handler!(request, response)
            } catch {
                failure = error
            }
            request.runner.ended(request, response, failure: failure)
        }
        running[request.head.number] = asyncRequest
    }

    /// Forward every `LoopResponder.requestEnded(_:_:)` here. On
    /// `RequestEnd.aborted(_:)` the request's Task is cancelled (once: the server reports
    /// each end once), unless its route said ``ClientAbortPolicy/continue``.
    public func requestEnded(_ head: RequestHead, _ end: RequestEnd) {
        executor.thread.preconditionOnThread()
        guard case .aborted = end, let request = running[head.number], request.abortPolicy == .cancel else { return }
        request.task?.cancel()
    }

    /// Cancels the handler of request `number` because its route's deadline passed
    /// (``RequestContext/cancellationReason`` then says so). Nothing if it has ended.
    public func cancelForDeadline(_ number: UInt64) {
        executor.thread.preconditionOnThread()
        guard let request = running[number] else { return }
        request.deadlinePassed = true
        request.task?.cancel()
    }

    /// Cancels every running handler, `.continue` routes included, and lets each read `reason`
    /// from ``AsyncRequest/shutdownReason`` (for a last message such as `server shutting down`:
    /// a cancelled handler can still answer or write while its client is there). Handlers
    /// started later are not affected. ``onIdle`` says when they have all ended.
    public func cancelAll(reason: String) {
        executor.thread.preconditionOnThread()
        var number: UInt32?
        for request in running.values {
            if request.shutdownReasonNumber == 0 {
                if number == nil {
                    if shutdownReasons.last != reason { shutdownReasons.append(reason) }
                    number = UInt32(shutdownReasons.count)
                }
                request.shutdownReasonNumber = number!
            }
            request.task?.cancel()
        }
    }

    /// A handler's Task is ending: on the loop thread (its preferred executor).
    private func ended(_ request: AsyncRequest, _ response: AsyncResponse, failure: (any Error)?) {
        executor.thread.preconditionOnThread()
        finish(request, response, failure: failure)
        // The request held the Task (whose closure holds the response, which holds the request)
        // and the handler: let them go with the Task, whoever keeps the request.
        request.task = nil
        request.handler = nil
        running[request.head.number] = nil
        if running.isEmpty { onIdle?() }
    }

    /// Answers or ends what the handler left, and reports a failure that was the handler's.
    private func finish(_ request: AsyncRequest, _ response: AsyncResponse, failure: (any Error)?) {
        let http = request.http
        let clientGone = http.abortReason != nil
        // A throw caused by the client leaving is not the handler's failure.
        let reported: HandlerFailure? = switch failure {
        case nil: nil
        case is ResponseError where clientGone: nil
        case is CancellationError where clientGone: nil
        case .some(let error): .threw(error)
        }
        if http.isPending {
            http.respond(status: 500, body: "internal server error\n")
            onHandlerFailure?(request.head, reported ?? .returnedWithoutAnswer)
        } else if http.isStreaming {
            http.endStream()
            if let reported { onHandlerFailure?(request.head, reported) }
        } else if let reported, !clientGone {
            onHandlerFailure?(request.head, reported)
        }
    }
}
