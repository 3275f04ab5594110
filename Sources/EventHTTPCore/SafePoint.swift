/// The adapter's re-entrancy rule in one place: nothing is freed from inside evhttp.
///
/// evhttp calls back into us from deep inside itself (a request callback, a connection's close
/// callback inside `evhttp_connection_free`, a reply's completion inside `evhttp_send_done`), and
/// still uses its own structures after the callback returns. Freeing a connection, or the whole
/// `evhttp`, from there frees memory evhttp is about to touch. So every C callback evhttp calls
/// runs inside ``callback(_:)``, which counts how deep we are, and every free goes through
/// ``perform(_:)``: at once when no evhttp callback is on the stack, else at the next safe point,
/// one of our own events activated for the next turn of the loop.
///
/// Ownership: owned by its ``LoopHTTPServer`` and shared (strongly) with the server's connections; a
/// queued action keeps whatever it captured alive until it runs.
///
/// Threading: loop-confined.
final class SafePoint {
    private var depth = 0
    private var actions: [() -> Void] = []
    private var event: Event?

    init(base: EventBase) throws(LibeventError) {
        event = try Event(base: base) { [unowned self] _ in self.run() }
    }

    /// Whether no evhttp callback is running: frees may happen now.
    var isSafe: Bool { depth == 0 }

    /// Runs `body` as one of evhttp's callbacks: frees asked for meanwhile wait for the safe point.
    @inline(__always)
    func callback<R>(_ body: () -> R) -> R {
        depth += 1
        defer { depth -= 1 }
        return body()
    }

    /// Runs `action` now if that is safe, else on the next turn of the loop, in order.
    func perform(_ action: @escaping () -> Void) {
        guard depth > 0 else {
            action()
            return
        }
        actions.append(action)
        event?.activate()
    }

    private func run() {
        while !actions.isEmpty {
            let due = actions
            actions = []
            for action in due { action() }
        }
    }
}
