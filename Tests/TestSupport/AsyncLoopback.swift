import EventHTTPSystem

// Async forms of LoopbackConnection's blocking reads, for async tests: each runs the blocking
// read on a thread of its own (`offCooperativePool`), so that no cooperative thread waits in
// poll(). In an async context Swift picks these over the blocking forms, and a call without
// `await` does not compile, so an async test cannot block the pool by accident.

extension LoopbackConnection {
    /// ``readResponse(timeout:requestMethod:)``, waited for off the cooperative pool.
    /// The connection is not touched by the caller until this returns (the type's invariant).
    public func readResponse(timeout: Duration? = nil, requestMethod: String = "GET") async throws -> HTTPReply {
        try await offCooperativePool { try self.readResponse(timeout: timeout, requestMethod: requestMethod) }
    }

    /// ``readToEnd(timeout:)``, waited for off the cooperative pool.
    public func readToEnd(timeout: Duration? = nil) async -> (text: String, end: StreamEnd) {
        // offCooperativePool throws only what its body throws, and this body throws nothing.
        try! await offCooperativePool { self.readToEnd(timeout: timeout) }
    }

    /// ``waitForClose(timeout:)``, waited for off the cooperative pool.
    public func waitForClose(timeout: Duration? = nil) async -> Bool {
        let end = await readToEnd(timeout: timeout).end
        return end == .closed || end == .reset
    }
}

/// Raises this process's open-file soft limit to its hard limit, for tests that hold a
/// descriptor per client and per server connection.
/// - Throws: the `getrlimit`/`setrlimit` failure.
public func raiseOpenFileLimit() throws {
    var limit = try ResourceLimits.openFiles()
    limit.rlim_cur = limit.rlim_max
    try ResourceLimits.setOpenFiles(limit)
}
