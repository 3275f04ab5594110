#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Libevent
import Testing

@Suite("LibeventError")
struct LibeventErrorTests {
    @Test func errnoDescriptionNamesKnownCodes() {
        let text = errnoDescription(ECONNRESET)
        #expect(text.contains("ECONNRESET"))
        #expect(text == "\(String(cString: strerror(ECONNRESET))) (ECONNRESET)")
        #expect(errnoDescription(EADDRINUSE) == "Address already in use (EADDRINUSE)")
    }

    @Test func errnoDescriptionFallsBackToTheNumber() {
        #expect(errnoDescription(ENOENT).hasSuffix("(errno \(ENOENT))"))
        #expect(errnoDescription(ENOENT).hasPrefix(String(cString: strerror(ENOENT))))
    }

    @Test func descriptions() {
        #expect(LibeventError.callFailed(function: "x", errno: nil).description == "x failed")
        #expect(LibeventError.callFailed(function: "event_add", errno: EINVAL).description
            == "event_add failed: \(errnoDescription(EINVAL))")
        #expect(LibeventError.allocationFailed(function: "evhttp_new").description
            == "evhttp_new failed: out of memory or unsupported configuration")
        #expect(LibeventError.addressResolution(host: "h", message: "m").description == "cannot resolve host \"h\": m")
        #expect(LibeventError.bind(address: "[::1]:80", errno: EACCES).description
            == "cannot listen on [::1]:80: \(errnoDescription(EACCES))")
    }
}
