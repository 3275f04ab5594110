#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// A value behind a `pthread_mutex_t`: the lock greetd's own code uses (the loop executor's
/// queue, the shutdown tally, the log writes).
///
/// Why not `Synchronization.Mutex`: on Linux its lock is a futex that ThreadSanitizer cannot see,
/// so every access under it from two threads is reported as a race (checked with Swift 6.3:
/// four threads appending under one `Mutex` give seven reports). ThreadSanitizer intercepts
/// `pthread_mutex_lock`, so this lock keeps ThreadSanitizer runs meaningful. Uncontended, it
/// costs about the same (an atomic exchange each way, no system call).
///
/// Threading: any thread. Ownership: the object owns the mutex and destroys it in `deinit`.
public final class Lock<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `value` is read and written only inside `withLock`, between
    // pthread_mutex_lock and pthread_mutex_unlock on `mutex`; `Value` is Sendable, so what goes
    // in or comes out may cross threads.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    /// A lock around `value`.
    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let result = pthread_mutex_init(mutex, nil)
        precondition(result == 0, "pthread_mutex_init failed: \(result)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock. Do not call back into the same lock.
    @inline(__always)
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
