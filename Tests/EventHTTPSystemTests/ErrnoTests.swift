import EventHTTPSystem
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Errno")
struct ErrnoTests {
    /// Names come from the C library for every value, not from a short table: these were all
    /// `errno_N` under the old 21-entry table.
    @Test(arguments: [(EHOSTUNREACH, "EHOSTUNREACH"), (ENOTSOCK, "ENOTSOCK"), (ENOENT, "ENOENT"),
                      (EISCONN, "EISCONN"), (ECONNABORTED, "ECONNABORTED"), (EINTR, "EINTR")])
    func namesComeFromTheCLibrary(code: Int32, name: String) {
        #expect(Errno(code).name == name)
    }

    @Test func messageIsStrerror() {
        #expect(Errno.addressInUse.message == "Address already in use")
        #expect(Errno(ENOTSOCK).message == "Socket operation on non-socket")
        #expect(Errno(EHOSTUNREACH).message == String(cString: strerror(EHOSTUNREACH)))
    }

    @Test func descriptionIsMessageThenName() {
        #expect(Errno.addressInUse.description == "Address already in use (EADDRINUSE)")
        #expect("\(Errno.connectionRefused)" == "Connection refused (ECONNREFUSED)")
    }

    @Test func unnamedValueFallsBackToItsNumber() {
        let unknown = Errno(4095)
        #expect(unknown.name == "errno 4095")
        #expect(unknown.description == "\(String(cString: strerror(4095))) (errno 4095)")
    }

    /// Every value the C library has a message for also has an `E...` name (glibc numbers its
    /// errors 1...133, with gaps whose message is "Unknown error N").
    @Test func everyKnownValueHasAName() {
        var named = 0
        for code in Int32(1)...Int32(133) {
            let errno = Errno(code)
            if errno.message.hasPrefix("Unknown error") { continue }
            #expect(errno.name.hasPrefix("E") && errno.name.allSatisfy { $0.isUppercase || $0.isNumber }, "\(code): \(errno.name)")
            named += 1
        }
        #expect(named >= 120, "only \(named) named values")
    }

    @Test func currentReadsAndWritesTheThreadsErrno() {
        // Read each value back at once: other calls (even #expect's) may overwrite errno.
        Errno.current = .timedOut
        let raw = errno
        errno = EMSGSIZE
        let typed = Errno.current
        #expect(raw == ETIMEDOUT)
        #expect(typed == .messageTooLong)
    }

    @Test func isHashableAndRawRepresentable() {
        #expect(Set([Errno(EPIPE), .brokenPipe, Errno(rawValue: EPIPE)]).count == 1)
        #expect(Errno.wouldBlock.rawValue == EAGAIN)
        #expect(Errno(rawValue: ENOMEM) == .noMemory)
    }

    @Test func systemErrorSaysWhichCallFailedAndWhy() {
        let error = SystemError(call: "bind(127.0.0.1:8080)", errno: .addressInUse)
        #expect(error.description == "bind(127.0.0.1:8080): Address already in use (EADDRINUSE)")
        #expect(error == SystemError(call: "bind(127.0.0.1:8080)", errno: Errno(EADDRINUSE)))
        #expect(error != SystemError(call: "bind(127.0.0.1:8081)", errno: .addressInUse))
    }
}
