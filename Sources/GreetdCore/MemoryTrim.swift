import Libevent
#if canImport(Glibc)
import Glibc
#endif

/// Hands freed memory back to the system after a burst.
///
/// After a burst, glibc keeps the freed memory of thousands of connections in its heap, and RSS
/// stays at the peak. ``schedule()`` (called when the last greeting ends) arms a one-second
/// timer; when it fires, and only if the worker is still idle, `malloc_trim` returns what it can.
/// At most once a second per worker, never under load. Does nothing off glibc.
///
/// Ownership: owns its timer. Threading: loop-confined.
final class MemoryTrim {
    private var timer: Event?

    /// - Parameter isIdle: whether no greeting runs, asked when the timer fires.
    init(base: EventBase, isIdle: @escaping () -> Bool) throws(LibeventError) {
        #if canImport(Glibc)
        if mallocTrim != nil {
            timer = try Event(base: base) { _ in
                if isIdle() { _ = mallocTrim?(0) }
            }
        }
        #endif
    }

    /// Trims in a second, unless a trim is already due.
    func schedule() {
        if let timer, !timer.isPending { try? timer.add(timeout: .seconds(1)) }
    }
}

#if canImport(Glibc)
/// glibc's `malloc_trim`, looked up at run time: `<malloc.h>` is not part of Swift's Glibc module.
/// `nil` on a libc without it (musl).
private let mallocTrim: (@convention(c) (Int) -> Int32)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
}()
#endif
