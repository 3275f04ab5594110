@testable import GreetdCore
import EventHTTPSystem
import EventHTTPCore
import Logging
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// LogBatch: a loop pass's lines in one write at the end of the pass; other threads unbatched;
/// the rest written on uninstall and on a fatal signal.
///
/// The handler writes to one end of a Unix *datagram* socket pair: each `write(2)` arrives as
/// one datagram, so the reader counts writes. Synchronous tests: a base is confined to the
/// test's thread.
@Suite struct LogBatchTests {
    /// A datagram socket pair: the log writes `writeEnd`; the test reads `readEnd` (non-blocking).
    private final class Datagrams {
        private var fds: [Int32] = [-1, -1]
        var writeEnd: Int32 { fds[0] }
        var readEnd: Int32 { fds[1] }
        init() throws {
            try SystemCalls.systemCall("socketpair") { socketpair(AF_UNIX, SocketKind.datagram, 0, &fds) }
            try SystemCalls.setNonBlocking(readEnd)
        }
        deinit {
            // Ignored: only EBADF could fail, and both ends are ours until now.
            try? SystemCalls.closeDescriptor(fds[0])
            try? SystemCalls.closeDescriptor(fds[1])
        }
        /// Every datagram waiting now, each as its text.
        func take() throws -> [String] {
            var found: [String] = []
            var buffer = [UInt8](repeating: 0, count: 256 * 1024)
            while case .processed(let count) = try SystemCalls.nonBlockingSystemCall("read", { read(readEnd, &buffer, buffer.count) }) {
                found.append(String(decoding: buffer.prefix(count), as: UTF8.self))
            }
            return found
        }
    }

    private func logger(_ fd: Int32) -> Logger {
        Logger(label: "test") { _ in FileDescriptorLogHandler(fd: fd, level: .info, journalStream: nil) }
    }

    /// The messages of the log lines in `datagram`, in order.
    private func messages(_ datagram: String) -> [String] {
        datagram.split(separator: "\n").compactMap { LogLine(parsing: String($0))?.message }
    }

    @Test("lines logged in one pass arrive in one write, in order, at the end of the pass: the reader gets them with no other event")
    func onePassOneWrite() throws {
        let socket = try Datagrams()
        let log = logger(socket.writeEnd)
        var received: [String] = []
        try withBase { base in
            let batch = try #require(try LogBatch.install(on: base))
            defer { batch.uninstall() }
            let logging = try Event(base: base) { _ in
                log.info("one")
                log.warning("two")
                log.info("three")
            }
            // The only thing that can wake the loop after the first pass: the batch arriving.
            let reader = try Event(base: base, fd: socket.readEnd, flags: .read) { _ in
                received = (try? socket.take()) ?? []
                base.exit()
            }
            try reader.add()
            let watchdog = try Watchdog(base, after: .seconds(10))
            logging.activate()
            try base.run()
            #expect(!watchdog.expired)
            #expect(batch.pendingByteCount == 0)
            withExtendedLifetime((logging, reader, watchdog)) {}
        }
        #expect(received.count == 1)
        #expect(received.first.map(messages) == ["one", "two", "three"])
    }

    @Test("a pass logging many lines writes them out as it goes: every line whole, in order")
    func overflow() throws {
        let socket = try Datagrams()
        let log = logger(socket.writeEnd)
        let text = String(repeating: "x", count: 90)
        // About 120 KB: several 16 KiB writes, fewer than the 10 datagrams a Unix socket queues
        // by default (the test reads after the pass).
        let total = 900
        try withBase { base in
            let batch = try #require(try LogBatch.install(on: base))
            defer { batch.uninstall() }
            let logging = try Event(base: base) { _ in
                for index in 0..<total { log.info("\(index) \(text)") }
                base.exit()
            }
            logging.activate()
            try base.run()
            withExtendedLifetime(logging) {}
        }
        let datagrams = try socket.take()
        #expect(datagrams.count >= 2)
        #expect(datagrams.allSatisfy { $0.utf8.count <= LogBatchSlot.capacity && $0.hasSuffix("\n") })
        #expect(datagrams.flatMap(messages) == (0..<total).map { "\($0) \(text)" })
    }

    @Test("a burst's lines go out every 16 KiB, before the pass ends: the reader is not held until its last line")
    func burstGoesOutEarly() throws {
        let socket = try Datagrams()
        let log = logger(socket.writeEnd)
        let text = String(repeating: "y", count: 100)
        var seenDuringPass: [String] = []
        try withBase { base in
            let batch = try #require(try LogBatch.install(on: base))
            defer { batch.uninstall() }
            let logging = try Event(base: base) { _ in
                var index = 0
                while batch.pendingByteCount + 200 < LogBatch.flushThreshold || index < 10 {
                    log.info("\(index) \(text)")
                    index += 1
                }
                #expect((try? socket.take())?.isEmpty == true, "nothing out below the threshold")
                for _ in 0..<5 { log.info("\(index) \(text)"); index += 1 }
                // Still inside the pass: the first 16 KiB are already out.
                seenDuringPass = ((try? socket.take()) ?? []).flatMap(messages)
                base.exit()
            }
            logging.activate()
            try base.run()
            withExtendedLifetime(logging) {}
        }
        #expect(!seenDuringPass.isEmpty)
        #expect(seenDuringPass.first == "0 \(text)", "in order, from the first line")
    }

    @Test("lines logged on the loop thread outside a pass wait for it or for uninstall, which writes them at once")
    func flushOnUninstall() throws {
        let socket = try Datagrams()
        let log = logger(socket.writeEnd)
        try withBase { base in
            let batch = try #require(try LogBatch.install(on: base))
            log.info("a")
            log.notice("b")
            #expect(batch.pendingByteCount > 0)
            #expect(try socket.take().isEmpty)
            batch.uninstall()
            let datagrams = try socket.take()
            #expect(datagrams.count == 1)
            #expect(datagrams.first.map(messages) == ["a", "b"])
            log.info("after")
            #expect(try socket.take().map(messages) == [["after"]])
        }
    }

    @Test("a thread without a loop writes each line at once")
    func unbatchedOffLoop() throws {
        let socket = try Datagrams()
        let log = logger(socket.writeEnd)
        #expect(LogBatch.current == nil)
        log.info("1")
        log.info("2")
        log.error("3")
        #expect(try socket.take().map(messages) == [["1"], ["2"], ["3"]])
    }

    @Test("a fatal signal writes the batch before the process dies of it (forked child)")
    func fatalSignal() throws {
        let socket = try Datagrams()
        let log = logger(socket.writeEnd)
        try withBase { base in
            let batch = try #require(try LogBatch.install(on: base))
            defer { batch.uninstall() }
            log.info("before the crash")
            log.error("last words")
            let child = fork()
            if child == 0 {
                // The child: async-signal-safe calls only. No core file, no backtracer, and only
                // this thread's batch (the copies of other tests' batches stay unwritten).
                var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
                _ = setrlimit(ResourceLimits.coreFileSize, &noCore)
                FatalSignalFlush.prepareForkedTestChild()
                _ = raise(SIGSEGV)
                _exit(0)
            }
            try #require(child > 0)
            var status: Int32 = 0
            _ = try SystemCalls.systemCall("waitpid") { waitpid(child, &status, 0) }
            #expect(status & 0x7f == SIGSEGV, "the child died of the signal it raised")
            let datagrams = try socket.take()
            #expect(datagrams.count == 1)
            #expect(datagrams.first.map(messages) == ["before the crash", "last words"])
        }
    }
}

