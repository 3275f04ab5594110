import EventHTTPSystem
import EventHTTPCore
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("LibeventError")
struct LibeventErrorTests {
    @Test func descriptions() {
        #expect(LibeventError.callFailed(function: "x", errno: nil).description == "x failed")
        #expect(LibeventError.callFailed(function: "event_add", errno: .invalidArgument).description
            == "event_add failed: Invalid argument (EINVAL)")
        #expect(LibeventError.allocationFailed(function: "evhttp_new").description
            == "evhttp_new failed: out of memory or unsupported configuration")
        #expect(LibeventError.addressResolution(host: "h", message: "m").description == "cannot resolve host \"h\": m")
        #expect(LibeventError.bind(address: "[::1]:80", errno: Errno(EACCES)).description
            == "cannot listen on [::1]:80: Permission denied (EACCES)")
    }

    /// Names outside the old 21-entry table (which printed `errno_N`) come from the C library.
    @Test func descriptionsNameEveryErrno() {
        #expect(LibeventError.callFailed(function: "connect", errno: Errno(EHOSTUNREACH)).description
            == "connect failed: No route to host (EHOSTUNREACH)")
        #expect(LibeventError.callFailed(function: "getsockname", errno: Errno(ENOTSOCK)).description
            == "getsockname failed: Socket operation on non-socket (ENOTSOCK)")
    }

    @Test func systemErrorBecomesCallFailed() {
        let error = LibeventError(SystemError(call: "pipe2", errno: .tooManyOpenFiles))
        #expect(error == .callFailed(function: "pipe2", errno: .tooManyOpenFiles))
        #expect(error.description == "pipe2 failed: Too many open files (EMFILE)")
    }
}
