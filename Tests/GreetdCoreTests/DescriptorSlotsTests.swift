import EventHTTPSystem
@testable import GreetdCore
import Testing

/// How many libevent descriptor slots each worker makes at start (`reserveDescriptorSlots`):
/// enough for every connection the limit allows plus greetd's own, never past the open-file limit.
@Suite("Descriptor slots per worker")
struct DescriptorSlotsTests {
    @Test("the connection limit plus 64, within the open-file limit, at most 65,536")
    func slots() throws {
        let soft = Int(try ResourceLimits.openFiles().rlim_cur)
        var configuration = GreetdConfiguration()
        configuration.http.maxConnections = 100
        #expect(descriptorSlots(configuration) == min(164, soft))
        configuration.http.maxConnections = 1_000_000
        #expect(descriptorSlots(configuration) == min(65_536, soft))
    }
}
