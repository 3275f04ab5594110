import Foundation
import EventHTTPSystem
import Synchronization
import Testing

@Suite("System calls")
struct SystemCallTests {
    /// A fake call that fails with `EINTR` twice, then succeeds: the funnel retries it.
    @Test func interruptedCallIsRetried() throws {
        var attempts = 0
        let result = try SystemCalls.systemCall("fake") { () -> Int32 in
            attempts += 1
            guard attempts > 2 else {
                Errno.current = .interrupted
                return -1
            }
            return 7
        }
        #expect(result == 7)
        #expect(attempts == 3)
    }

    @Test func failureThrowsTheCallAndItsErrno() {
        var attempts = 0
        let error = #expect(throws: SystemError.self) {
            try SystemCalls.systemCall("connect(127.0.0.1:1)") { () -> Int32 in
                attempts += 1
                Errno.current = .connectionRefused
                return -1
            }
        }
        #expect(error == SystemError(call: "connect(127.0.0.1:1)", errno: .connectionRefused))
        #expect(attempts == 1, "only EINTR is retried")
    }

    @Test func callNameIsBuiltOnlyOnFailure() throws {
        var built = 0
        func name() -> String {
            built += 1
            return "read"
        }
        _ = try SystemCalls.systemCall(name()) { Int32(0) }
        #expect(built == 0)
        _ = #expect(throws: SystemError.self) { try SystemCalls.systemCall(name()) { () -> Int in Errno.current = .badFileDescriptor; return -1 } }
        #expect(built == 1)
    }

    @Test func realBadDescriptorIsReportedAsEBADF() {
        var byte: UInt8 = 0
        #expect(throws: SystemError(call: "read", errno: .badFileDescriptor)) {
            try SystemCalls.systemCall("read") { read(-1, &byte, 1) }
        }
    }

    @Test func valueOrErrnoGivesTheErrnoAsAValue() {
        #expect(SystemCalls.valueOrErrno { () -> Int32 in Errno.current = .inProgress; return -1 } == .failure(.inProgress))
        #expect(SystemCalls.valueOrErrno { Int32(3) } == .success(3))
    }

    @Test func emptyNonBlockingPipeWouldBlockInsteadOfThrowing() throws {
        let pipe = try SystemCalls.makePipe(nonBlocking: true)
        defer { try? SystemCalls.closeDescriptor(pipe.read); try? SystemCalls.closeDescriptor(pipe.write) }
        var byte: UInt8 = 0
        #expect(try SystemCalls.nonBlockingSystemCall("read") { read(pipe.read, &byte, 1) } == .wouldBlock)
        var one: UInt8 = 42
        #expect(try SystemCalls.nonBlockingSystemCall("write") { write(pipe.write, &one, 1) } == .processed(1))
        #expect(try SystemCalls.nonBlockingSystemCall("read") { read(pipe.read, &byte, 1) } == .processed(1))
        #expect(byte == 42)
    }

    @Test func fullNonBlockingPipeWouldBlockOnWrite() throws {
        let pipe = try SystemCalls.makePipe(nonBlocking: true)
        defer { try? SystemCalls.closeDescriptor(pipe.read); try? SystemCalls.closeDescriptor(pipe.write) }
        let chunk = [UInt8](repeating: 1, count: 4096)
        var written = 0
        while case .processed(let count) = try SystemCalls.nonBlockingSystemCall("write", { write(pipe.write, chunk, chunk.count) }) {
            written += count
            try #require(written < 64 << 20, "a pipe never filled")
        }
        #expect(written > 0)
    }

    @Test func pipeAndSocketAreCloseOnExec() throws {
        let pipe = try SystemCalls.makePipe()
        defer { try? SystemCalls.closeDescriptor(pipe.read); try? SystemCalls.closeDescriptor(pipe.write) }
        let socket = try SystemCalls.openSocket(domain: AF_INET, type: SocketKind.stream, nonBlocking: true)
        defer { try? SystemCalls.closeDescriptor(socket) }
        let datagram = try SystemCalls.openSocket(domain: AF_UNIX, type: SocketKind.datagram)
        defer { try? SystemCalls.closeDescriptor(datagram) }
        for fd in [pipe.read, pipe.write, socket, datagram] {
            #expect(try SystemCalls.systemCall("fcntl") { fcntl(fd, F_GETFD) } & FD_CLOEXEC != 0, "fd \(fd)")
        }
        #expect(try SystemCalls.systemCall("fcntl") { fcntl(socket, F_GETFL) } & O_NONBLOCK != 0)
        #expect(try SystemCalls.systemCall("fcntl") { fcntl(datagram, F_GETFL) } & O_NONBLOCK == 0)
        #expect(try SystemCalls.systemCall("fcntl") { fcntl(pipe.read, F_GETFL) } & O_NONBLOCK == 0)
        #expect(try SystemCalls.socketOption(socket, level: SOL_SOCKET, option: SO_TYPE) == SocketKind.stream)
        #expect(try SystemCalls.socketOption(datagram, level: SOL_SOCKET, option: SO_TYPE) == SocketKind.datagram)
    }

    @Test func socketOptionsRoundTrip() throws {
        let socket = try SystemCalls.openSocket(domain: AF_INET, type: SocketKind.stream)
        defer { try? SystemCalls.closeDescriptor(socket) }
        try SystemCalls.setSocketOption(socket, level: SOL_SOCKET, option: SO_REUSEADDR, value: 1)
        #expect(try SystemCalls.socketOption(socket, level: SOL_SOCKET, option: SO_REUSEADDR) != 0)
        try SystemCalls.setSocketOption(socket, level: SOL_SOCKET, option: SO_REUSEADDR, value: 0)
        #expect(try SystemCalls.socketOption(socket, level: SOL_SOCKET, option: SO_REUSEADDR) == 0)
    }

    /// With `SendFlags.noSignal`, writing to a connection whose peer is gone fails with `EPIPE`;
    /// without it, `SIGPIPE` would end the test process.
    @Test func sendToAClosedPeerIsEPIPENotSIGPIPE() throws {
        var fds: [Int32] = [-1, -1]
        try SystemCalls.systemCall("socketpair") { socketpair(AF_UNIX, SocketKind.stream, 0, &fds) }
        defer { try? SystemCalls.closeDescriptor(fds[0]) }
        try SystemCalls.closeDescriptor(fds[1])
        let bytes: [UInt8] = [1, 2, 3]
        #expect(throws: SystemError(call: "send", errno: .brokenPipe)) {
            try SystemCalls.systemCall("send") { send(fds[0], bytes, bytes.count, SendFlags.noSignal) }
        }
    }

    /// A client that aborts hard: after `setResetOnClose`, its close reaches the peer as a reset
    /// (`ECONNRESET` on the next read), not as an orderly end of stream.
    @Test func resetOnCloseSendsAReset() throws {
        let listener = try SystemCalls.openSocket(domain: AF_INET, type: SocketKind.stream)
        defer { try? SystemCalls.closeDescriptor(listener) }
        var address = sockaddr_in(address: in_addr(s_addr: UInt32(0x7f00_0001).bigEndian), port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer throws(SystemError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(SystemError) in
                try SystemCalls.systemCall("bind") { bind(listener, address, length) }
                try SystemCalls.systemCall("listen") { listen(listener, 1) }
                try SystemCalls.systemCall("getsockname") { getsockname(listener, address, &length) }
            }
        }
        let client = try SystemCalls.openSocket(domain: AF_INET, type: SocketKind.stream)
        _ = try withUnsafePointer(to: &address) { pointer throws(SystemError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(SystemError) in
                try SystemCalls.systemCall("connect") { connect(client, address, length) }
            }
        }
        let server = try SystemCalls.systemCall("accept") { accept(listener, nil, nil) }
        defer { try? SystemCalls.closeDescriptor(server) }
        try SystemCalls.setResetOnClose(client)
        try SystemCalls.closeDescriptor(client)
        var byte: UInt8 = 0
        #expect(throws: SystemError(call: "recv", errno: .connectionReset)) {
            try SystemCalls.systemCall("recv") { recv(server, &byte, 1, 0) }
        }
    }

    @Test func closeOfABadDescriptorThrowsEBADF() {
        #expect(throws: SystemError(call: "close", errno: .badFileDescriptor)) { try SystemCalls.closeDescriptor(-1) }
    }
}
