import CLibevent

extension RequestHead {
    /// Fills in who sent the request, for an access log: the peer (``remote``), the version
    /// (``proto``) and the `User-Agent`. A few loads and up to two small strings per request;
    /// evhttp keeps the peer's address as text already.
    mutating func describeClient(_ request: UnsafeMutablePointer<evhttp_request>, connection: HTTPConnection) {
        remote = connection.remoteDescription
        // The read of `http_struct.h` LoopRequest makes too: evhttp 2.1 has no accessor for it.
        switch (request.pointee.major, request.pointee.minor) {
        case (1, 1): proto = "HTTP/1.1"
        case (1, 0): proto = "HTTP/1.0"
        case (let major, let minor): proto = "HTTP/\(major).\(minor)"
        }
        userAgent = evhttp_find_header(evhttp_request_get_input_headers(request), "User-Agent").map { String(cString: $0) }
    }

    /// The peer of `connection` (a raw `evhttp_connection`) as ``remote(host:port:)`` writes it.
    static func remote(of connection: OpaquePointer) -> String? {
        var address: UnsafeMutablePointer<CChar>?
        var port: UInt16 = 0
        evhttp_connection_get_peer(connection, &address, &port)
        return address.map { remote(host: String(cString: $0), port: port) }
    }

    /// `host:port` as an access log shows it: an IPv4-mapped address (`::ffff:127.0.0.1`, a
    /// client reached over a dual-stack socket) as plain IPv4, an IPv6 one in brackets.
    static func remote(host: String, port: UInt16) -> String {
        var host = Substring(host)
        if host.hasPrefix("::ffff:"), host.contains(".") { host = host.dropFirst(7) }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
