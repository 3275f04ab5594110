public import Logging
import Metrics
import HTTPTypes

/// Code that runs around handlers: it sees the request and the context, calls `next` (the
/// rest of the chain and the handler) or answers itself, and may change the response.
///
/// ```swift
/// struct Timing: Middleware {
///     func handle(_ request: Request, context: RequestContext,
///                 next: (Request, RequestContext) async throws -> Response) async throws -> Response {
///         let start = ContinuousClock.now
///         defer { context.logger.debug("took \(ContinuousClock.now - start)") }
///         return try await next(request, context)
///     }
/// }
/// ```
public protocol Middleware: Sendable {
    /// Handles `request`, usually by calling `next`.
    func handle(_ request: Request, context: RequestContext,
                next: (Request, RequestContext) async throws -> Response) async throws -> Response
}

enum MiddlewareChain {
    /// `responder` inside `middleware` (the first outermost).
    static func wrap(_ responder: @escaping Responder, in middleware: [any Middleware]) -> Responder {
        middleware.reversed().reduce(responder) { next, layer in
            { request, context in try await layer.handle(request, context: context, next: next) }
        }
    }
}

/// Logs each request through the context's logger (swift-log), with `request_id` in the
/// metadata: one line when it arrives (`debug`) and one when it is answered or fails.
public struct RequestLoggerMiddleware: Middleware {
    /// The level of the answered line.
    public var level: Logger.Level

    /// A logger middleware writing at `level` (default `info`).
    public init(level: Logger.Level = .info) { self.level = level }

    public func handle(_ request: Request, context: RequestContext,
                       next: (Request, RequestContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        // Read once: the context makes its logger (with `request_id`) each time it is read.
        let logger = context.logger
        logger.debug("request", metadata: ["method": "\(request.method)", "path": "\(request.path)"])
        do {
            let response = try await next(request, context)
            logger.log(level: level, "answered", metadata: [
                "method": "\(request.method)", "path": "\(request.path)", "status": "\(response.status.code)",
                "duration": "\(ContinuousClock.now - start)",
            ])
            return response
        } catch {
            let status = (error as? HTTPError)?.status.code ?? 500
            logger.log(level: level, "failed", metadata: [
                "method": "\(request.method)", "path": "\(request.path)", "status": "\(status)",
                "error": "\(error)", "duration": "\(ContinuousClock.now - start)",
            ])
            throw error
        }
    }
}

/// Records each request in swift-metrics: a timer `http_server_request_duration` with
/// dimensions `http_request_method`, `http_route` (the matched pattern, empty when none) and
/// `http_response_status_code`, and a counter `http_server_requests_total` with the same.
public struct MetricsMiddleware: Middleware {
    /// A middleware recording into the bootstrapped `MetricsSystem`.
    public init() {}

    public func handle(_ request: Request, context: RequestContext,
                       next: (Request, RequestContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var status = 500
        defer {
            let dimensions = [
                ("http_request_method", request.method.rawValue), ("http_route", context.route),
                ("http_response_status_code", String(status)),
            ]
            Metrics.Timer(label: "http_server_request_duration", dimensions: dimensions)
                .recordNanoseconds(Self.nanoseconds(ContinuousClock.now - start))
            Counter(label: "http_server_requests_total", dimensions: dimensions).increment()
        }
        do {
            let response = try await next(request, context)
            status = response.status.code
            return response
        } catch let error as HTTPError {
            status = error.status.code
            throw error
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
