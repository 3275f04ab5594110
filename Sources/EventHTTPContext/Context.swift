import EventHTTPSystem

/// Why a ``Context`` is done, with Go's words for it (`ctx.Err().Error()`).
public enum ContextError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Go's `context.Canceled`: someone called cancel (here: the client went away).
    case canceled
    /// Go's `context.DeadlineExceeded`: the context's deadline passed.
    case deadlineExceeded

    /// Go's text, verbatim: `context canceled`, `context deadline exceeded`.
    public var description: String {
        switch self {
        case .canceled: return "context canceled"
        case .deadlineExceeded: return "context deadline exceeded"
        }
    }
}

/// An object told when a ``Context`` is done, without a closure: for the thousands of contexts
/// of a busy server, where each closure's capture context would be an allocation.
public protocol ContextObserver: AnyObject {
    /// Called once, on the context's thread, when `context` is done.
    func contextDone(_ context: Context, error: ContextError)
}

/// A Go-style context for one unit of work: live until cancelled, then done for good, with an
/// ``err`` and, optionally, a ``cause``.
///
/// - Cancelling runs every registered done-callback exactly once, in registration order, on the
///   calling thread. Later cancels do nothing. After done, no callback is retained.
/// - A child made with ``init(parent:)`` is cancelled when its parent is, with the parent's error
///   and cause; cancelling a child leaves the parent alone.
///
/// Threading: confined to the thread that created it (greetd: the event loop's). Every entry
/// point checks that with a precondition; Go's contexts are goroutine-safe, but greetd's work
/// for a request never leaves its loop, so a lock would buy nothing.
public final class Context {
    /// A handle for ``removeOnDone(_:)``.
    public struct Registration: Hashable, Sendable {
        let id: Int
    }

    /// `nil` while live; set once, when done.
    private var outcome: (err: ContextError, cause: (any Error)?)?
    /// The first done-callback, stored inline: a request's context has one, and a dictionary
    /// would cost it an allocation.
    private var firstCallback: (id: Int, run: Callback)?
    /// Later done-callbacks by registration id (ids grow, so sorting them gives registration
    /// order). A dictionary so that the many children of a long-lived parent unregister in O(1).
    private var callbacks: [Int: Callback] = [:]

    private enum Callback {
        case closure((ContextError) -> Void)
        /// Unowned: an observer unregisters (or outlives the context) by contract.
        case observer(UnownedObserver)

        func callAsFunction(_ context: Context, _ err: ContextError) {
            switch self {
            case .closure(let run): run(err)
            case .observer(let observer): observer.value.contextDone(context, error: err)
            }
        }
    }

    private struct UnownedObserver {
        unowned let value: any ContextObserver
    }
    private var nextID = 0
    private let thread = ThreadID.current
    /// The parent and our registration on it, while both are live.
    private var parentLink: (parent: Context, registration: Registration)?

    /// When the context's work must be done by (Go's `ctx.Deadline()`): the earlier of its own and
    /// its parent's. Informational: whoever set it arms the timer that calls
    /// `cancel(.deadlineExceeded)` (greetd: a libevent timer on the request's loop).
    public let deadline: ContinuousClock.Instant?

    /// A new live context with no parent (Go's `context.Background()` made cancellable).
    public init() {
        deadline = nil
    }

    /// A new context that is done as soon as `parent` is (Go's `context.WithCancel(parent)`, or
    /// `WithDeadline` with a `deadline`). If the parent is already done, so is the child.
    public init(parent: Context, deadline: ContinuousClock.Instant? = nil) {
        switch (parent.deadline, deadline) {
        case (let a?, let b?): self.deadline = min(a, b)
        case (let a, let b): self.deadline = a ?? b
        }
        if let err = parent.err {
            outcome = (err, parent.cause)
            return
        }
        parentLink = (parent, parent.register(.observer(UnownedObserver(value: self))))
    }

    deinit {
        // A child that dies live must not leave its callback on a longer-lived parent.
        if let (parent, registration) = parentLink { parent.removeOnDone(registration) }
    }

    @inline(__always)
    private func checkThread() {
        precondition(thread.isCurrent, "Context used off the thread that created it")
    }

    /// `nil` while live; why it is done afterwards (Go's `ctx.Err()`).
    public var err: ContextError? {
        checkThread()
        return outcome?.err
    }

    /// Whether the context is done.
    public var isDone: Bool { err != nil }

    /// Go's `context.Cause(ctx)`: the cause given to cancel, else ``err``; `nil` while live.
    public var cause: (any Error)? {
        checkThread()
        guard let outcome else { return nil }
        return outcome.cause ?? outcome.err
    }

    /// Marks the context done with `err` (and `cause`) and runs the done-callbacks once.
    /// - Returns: `true` if this call did it, `false` if the context was already done.
    @discardableResult
    public func cancel(_ err: ContextError = .canceled, cause: (any Error)? = nil) -> Bool {
        checkThread()
        guard outcome == nil else { return false }
        outcome = (err, cause)
        if let (parent, registration) = parentLink {
            parentLink = nil
            parent.removeOnDone(registration)
        }
        // Take each callback out just before running it: one may unregister a later one (a
        // child freed by an earlier callback removes its own), which then must not run.
        if let first = firstCallback {
            firstCallback = nil
            first.run(self, err)
        }
        for id in callbacks.keys.sorted() {
            if let callback = callbacks.removeValue(forKey: id) { callback(self, err) }
        }
        callbacks = [:]
        return true
    }

    /// Registers `callback` to run once when the context is done. If it is done already, the
    /// callback runs now (as with Go's `context.AfterFunc`).
    @discardableResult
    public func onDone(_ callback: @escaping (ContextError) -> Void) -> Registration {
        register(.closure(callback))
    }

    /// Registers `observer` to be told once when the context is done; at once if it is done
    /// already. The context holds it unowned: unregister it (``removeOnDone(_:)``) before it goes.
    @discardableResult
    public func onDone(observer: any ContextObserver) -> Registration {
        register(.observer(UnownedObserver(value: observer)))
    }

    private func register(_ callback: Callback) -> Registration {
        checkThread()
        nextID += 1
        let registration = Registration(id: nextID)
        if let outcome {
            callback(self, outcome.err)
        } else {
            if firstCallback == nil && callbacks.isEmpty {
                firstCallback = (registration.id, callback)
            } else {
                callbacks[registration.id] = callback
            }
        }
        return registration
    }

    /// Unregisters a callback that has not run yet.
    /// - Returns: `true` if it was registered and will no longer run.
    @discardableResult
    public func removeOnDone(_ registration: Registration) -> Bool {
        checkThread()
        if firstCallback?.id == registration.id {
            firstCallback = nil
            return true
        }
        return callbacks.removeValue(forKey: registration.id) != nil
    }

    /// Number of callbacks waiting (for leak checks in tests).
    public var pendingCallbackCount: Int {
        checkThread()
        return callbacks.count + (firstCallback == nil ? 0 : 1)
    }
}

extension Context: ContextObserver {
    /// A child hears that its parent is done: it is done too, with the parent's error and cause.
    public func contextDone(_ parent: Context, error: ContextError) {
        parentLink = nil
        cancel(error, cause: parent.cause)
    }
}
