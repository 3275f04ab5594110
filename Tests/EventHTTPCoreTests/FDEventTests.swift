import EventHTTPSystem
import EventHTTPCore
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Descriptor events")
struct FDEventTests {
    /// Backends to run descriptor tests under: libevent's choice and plain select.
    static let backends: [[String]] = [[], ["epoll", "poll"]]

    @Test(arguments: backends)
    func readEventFiresAfterPeerWrites(avoiding: [String]) throws {
        try withBase(avoiding: avoiding) { base in
            let pair = try SocketPair()
            var fired: [EventFlags] = []
            var received: [UInt8] = []
            do {
                let watchdog = try Watchdog(base)
                let reader = try Event(base: base, fd: pair.left, flags: [.read]) { flags in
                    fired.append(flags)
                    var buffer = [UInt8](repeating: 0, count: 16)
                    let count = read(pair.left, &buffer, buffer.count)
                    #expect(count > 0, "read: \(Errno.current)")
                    if count > 0 { received += buffer.prefix(count) }
                    base.exit()
                }
                try reader.add()
                #expect(reader.isPending)
                // Write once the loop is running, from a timer, so the read event really waits.
                let writer = try Event(base: base) { _ in
                    var byte: UInt8 = 42
                    #expect(write(pair.right, &byte, 1) == 1, "write: \(Errno.current)")
                }
                try writer.add(timeout: .milliseconds(2))
                try base.run()
                #expect(!watchdog.expired)
                #expect(!reader.isPending)  // not persistent: fired once, then disarmed
            }
            #expect(fired == [.read])
            #expect(received == [42])
        }
    }

    @Test func readEventDoesNotFireWithoutData() throws {
        try withBase { base in
            let pair = try SocketPair()
            var fired = false
            do {
                let reader = try Event(base: base, fd: pair.left, flags: [.read]) { _ in fired = true }
                let stop = try Event(base: base) { _ in base.exit() }
                try reader.add()
                try stop.add(timeout: .milliseconds(10))
                try base.run()
            }
            #expect(!fired)
        }
    }

    @Test func readEventWithTimeoutReportsTimeout() throws {
        try withBase { base in
            let pair = try SocketPair()
            var fired: [EventFlags] = []
            do {
                let reader = try Event(base: base, fd: pair.left, flags: [.read]) { fired.append($0) }
                try reader.add(timeout: .milliseconds(2))
                try base.run()
            }
            #expect(fired == [.timeout])
        }
    }

    @Test(arguments: backends)
    func writeEventFiresOnWritableSocket(avoiding: [String]) throws {
        try withBase(avoiding: avoiding) { base in
            let pair = try SocketPair()
            var fired: [EventFlags] = []
            do {
                let writer = try Event(base: base, fd: pair.left, flags: [.write]) { fired.append($0) }
                try writer.add()
                try base.run()
            }
            #expect(fired == [.write])
        }
    }

    /// With early-close support (epoll, poll) a peer's close is `EV_CLOSED`; without it (select,
    /// which `EVENT_NOEPOLL=1 EVENT_NOPOLL=1` leaves) it still shows up, as readability (EOF).
    @Test func closedEventReportsPeerClose() throws {
        try withBase { base in
            let pair = try SocketPair()
            var fired: [EventFlags] = []
            do {
                let watchdog = try Watchdog(base)
                let watcher = try Event(base: base, fd: pair.left, flags: [.read, .closed]) { flags in
                    fired.append(flags)
                    base.exit()
                }
                try watcher.add()
                let closer = try Event(base: base) { _ in pair.closeEnd(1) }
                try closer.add(timeout: .milliseconds(2))
                try base.run()
                #expect(!watchdog.expired)
            }
            try #require(fired.count == 1, "fired: \(fired)")
            if base.supportsEarlyClose {
                #expect(fired[0].contains(.closed), "\(base.method): \(fired[0])")
            } else {
                #expect(fired[0] == .read, "\(base.method): \(fired[0])")
            }
        }
    }

    /// Without early-close support the peer's close still shows up, as readability (EOF).
    @Test func closedFlagOnSelectFallsBackToRead() throws {
        try withBase(avoiding: ["epoll", "poll"]) { base in
            #expect(!base.supportsEarlyClose)
            let pair = try SocketPair()
            var fired: [EventFlags] = []
            do {
                let watchdog = try Watchdog(base)
                let watcher = try Event(base: base, fd: pair.left, flags: [.read, .closed]) { flags in
                    fired.append(flags)
                    base.exit()
                }
                try watcher.add()
                pair.closeEnd(1)
                try base.run()
                #expect(!watchdog.expired)
            }
            #expect(fired == [.read])
            var byte: UInt8 = 0
            #expect(read(pair.left, &byte, 1) == 0, "end of stream")
        }
    }

    @Test func persistentReadEventFiresForEachWrite() throws {
        try withBase { base in
            let pair = try SocketPair()
            var reads = 0
            do {
                let watchdog = try Watchdog(base)
                let reader = try Event(base: base, fd: pair.left, flags: [.read, .persist]) { flags in
                    #expect(flags == .read)
                    var buffer = [UInt8](repeating: 0, count: 16)
                    #expect(read(pair.left, &buffer, buffer.count) > 0, "read: \(Errno.current)")
                    reads += 1
                    if reads == 3 { base.exit() }
                }
                try reader.add()
                let writer = try Event(base: base, flags: .persist) { _ in
                    var byte: UInt8 = 1
                    #expect(write(pair.right, &byte, 1) == 1, "write: \(Errno.current)")
                }
                try writer.add(timeout: .milliseconds(2))
                try base.run()
                #expect(!watchdog.expired)
                #expect(reader.isPending)
            }
            #expect(reads == 3)
        }
    }
}
