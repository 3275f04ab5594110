import EventHTTPSystem
import Synchronization
import Testing

// `withBase` and `Watchdog` come from TestSupport, shared with GreetdClientTests. The
// `@_exported` import makes them visible in every file of this target.
@_exported import TestSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A connected `AF_UNIX` stream socket pair; both ends still open are closed in `deinit`.
final class SocketPair {
    private(set) var fds: [Int32] = [-1, -1]

    init() throws {
        try SystemCalls.systemCall("socketpair") { socketpair(AF_UNIX, SocketKind.stream, 0, &fds) }
    }

    var left: Int32 { fds[0] }
    var right: Int32 { fds[1] }

    /// Closes one end (index 0 or 1) now.
    func closeEnd(_ index: Int) {
        if fds[index] >= 0 {
            // Ignored: only EBADF could fail, and the end is ours until now.
            try? SystemCalls.closeDescriptor(fds[index])
            fds[index] = -1
        }
    }

    deinit {
        closeEnd(0)
        closeEnd(1)
    }
}

/// A value shared with other threads (a `Mutex` cannot be captured by an escaping closure).
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    var value: Value { mutex.withLock { $0 } }
    func set(_ value: Value) { mutex.withLock { $0 = value } }
    func update(_ body: (inout Value) -> Void) { mutex.withLock { body(&$0) } }
}
