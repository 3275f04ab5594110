import EventHTTPCore
import Logging

/// What the recorder counts beyond greetings: every connection's close, and every answer in
/// OpenTelemetry's HTTP histogram.
extension RequestRecorder {
    /// A client connection closed for `reason`: counted in `greetd_connections_closed_total`,
    /// and, when the server dropped it, logged in words. The pipeline limit is a `warning` at
    /// most once a second; the connection limit is already one (`Connections refused at
    /// --max-connections`); the other drops are `info`.
    func connectionClosed(_ reason: ConnectionCloseReason) {
        metrics.connectionClosed(reason)
        switch reason {
        case .client, .done, .maxConnections:
            return
        case .pipelineLimit:
            pipelineDrops.record { count in
                logger.warning("Connection dropped: pipeline limit", metadata: [
                    "reason": "\(reason.rawValue)", "dropped": "\(count)",
                ])
            }
        case .headerTimeout, .idleTimeout, .badRequest, .shutdown:
            guard logLevel <= .info else { return }
            logger.info("Connection dropped: \(reason)", metadata: ["reason": "\(reason.rawValue)"])
        }
    }

    /// Records one answer (canned ones included) in `http_server_request_duration_seconds`.
    /// - Parameter route: the pattern of the route that answered; empty when none did.
    func recordHTTP(_ head: RequestHead, status: Int, route: String, elapsed: Duration) {
        let method = Self.httpMethods.firstIndex(of: head.method) ?? Self.httpMethods.count
        let routeIndex = Self.routes.firstIndex(of: route) ?? Self.routes.count
        let key = (status * 16 + method) * 8 + routeIndex
        if let histogram = httpDurations[key] {
            histogram.record(elapsed)
            return
        }
        let histogram = metrics.httpDurations.makeHistogram(key: key) {
            [(MetricName.httpMethodLabel, method < Self.httpMethods.count ? head.method : "_OTHER"),
             (MetricName.httpStatusLabel, String(status)),
             (MetricName.httpRouteLabel, routeIndex < Self.routes.count ? route : "")]
        }
        httpDurations[key] = histogram
        histogram.record(elapsed)
    }

    /// OpenTelemetry's known methods; any other (or one not read) is `_OTHER`.
    static let httpMethods = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
    /// greetd's route patterns.
    static let routes = ["/", "/healthz", "/metrics"]
}
