import Testing
import EventHTTPContext

/// Each test makes and uses its contexts on one thread, inside one synchronous function: a
/// `Context` is confined to the thread that created it.
@Suite struct ContextTests {
    struct SomeError: Error, Equatable {
        let code: Int
    }

    /// Captured by callbacks to show when they are released.
    final class Token {}

    /// Records what done-callbacks saw, in order.
    final class Log {
        var entries: [String] = []
    }

    // MARK: - Error texts

    @Test func errorTextsAreGos() {
        #expect(ContextError.canceled.description == "context canceled")
        #expect(ContextError.deadlineExceeded.description == "context deadline exceeded")
        #expect("\(ContextError.canceled)" == "context canceled")
        #expect(String(describing: ContextError.deadlineExceeded) == "context deadline exceeded")
    }

    // MARK: - Live and done

    @Test func newContextIsLive() {
        let ctx = Context()
        #expect(ctx.err == nil)
        #expect(ctx.cause == nil)
        #expect(!ctx.isDone)
        #expect(ctx.pendingCallbackCount == 0)
    }

    @Test func cancelMakesItDoneWithCanceled() {
        let ctx = Context()
        #expect(ctx.cancel())
        #expect(ctx.isDone)
        #expect(ctx.err == .canceled)
        #expect((ctx.cause as? ContextError) == .canceled)
    }

    @Test func cancelWithDeadlineExceeded() {
        let ctx = Context()
        #expect(ctx.cancel(.deadlineExceeded))
        #expect(ctx.err == .deadlineExceeded)
        #expect((ctx.cause as? ContextError) == .deadlineExceeded)
    }

    @Test func secondCancelDoesNothing() {
        let ctx = Context()
        #expect(ctx.cancel())
        #expect(!ctx.cancel())
        #expect(!ctx.cancel(.deadlineExceeded, cause: SomeError(code: 1)))
        #expect(ctx.err == .canceled)
        #expect((ctx.cause as? ContextError) == .canceled)
        #expect(ctx.isDone)
    }

    // MARK: - Cause

    @Test func causeIsTheOneGivenAndErrStaysCanceled() {
        let ctx = Context()
        #expect(ctx.cancel(.canceled, cause: SomeError(code: 7)))
        #expect(ctx.err == .canceled)
        #expect((ctx.cause as? SomeError) == SomeError(code: 7))
        #expect(!(ctx.cause is ContextError))
    }

    @Test func causeWithoutOneIsErr() {
        let ctx = Context()
        ctx.cancel(.deadlineExceeded)
        #expect((ctx.cause as? ContextError) == ctx.err)
        #expect((ctx.cause as? ContextError) == .deadlineExceeded)
    }

    // MARK: - Done-callbacks

    @Test func callbacksRunOnceInRegistrationOrderWithTheError() {
        let ctx = Context()
        let log = Log()
        for name in ["a", "b", "c"] {
            ctx.onDone { err in log.entries.append("\(name):\(err)") }
        }
        #expect(ctx.pendingCallbackCount == 3)
        #expect(log.entries.isEmpty)

        ctx.cancel(.deadlineExceeded)
        let expected = ["a:context deadline exceeded", "b:context deadline exceeded", "c:context deadline exceeded"]
        #expect(log.entries == expected)
        #expect(ctx.pendingCallbackCount == 0)

        ctx.cancel()
        ctx.cancel(.deadlineExceeded)
        #expect(log.entries == expected)
    }

    @Test func callbacksSeeTheContextAlreadyDone() {
        let ctx = Context()
        var seen: (ContextError?, Bool)?
        ctx.onDone { _ in seen = (ctx.err, ctx.isDone) }
        ctx.cancel()
        #expect(seen?.0 == .canceled)
        #expect(seen?.1 == true)
    }

    @Test func callbackRegisteredAfterDoneRunsImmediately() {
        let ctx = Context()
        ctx.cancel(.deadlineExceeded)
        var runs: [ContextError] = []
        ctx.onDone { runs.append($0) }
        #expect(runs == [.deadlineExceeded])
        #expect(ctx.pendingCallbackCount == 0)
        ctx.cancel()
        #expect(runs == [.deadlineExceeded])
    }

    @Test func callbackRegisteredDuringCancelRunsImmediately() {
        let ctx = Context()
        let log = Log()
        ctx.onDone { _ in
            log.entries.append("first")
            ctx.onDone { _ in log.entries.append("nested") }
            log.entries.append("after nested")
        }
        ctx.onDone { _ in log.entries.append("second") }
        ctx.cancel()
        #expect(log.entries == ["first", "nested", "after nested", "second"])
        #expect(ctx.pendingCallbackCount == 0)
    }

    @Test func removeOnDonePreventsTheCallback() {
        let ctx = Context()
        let log = Log()
        ctx.onDone { _ in log.entries.append("a") }
        let b = ctx.onDone { _ in log.entries.append("b") }
        ctx.onDone { _ in log.entries.append("c") }
        #expect(ctx.pendingCallbackCount == 3)

        #expect(ctx.removeOnDone(b))
        #expect(!ctx.removeOnDone(b))
        #expect(ctx.pendingCallbackCount == 2)

        ctx.cancel()
        #expect(log.entries == ["a", "c"])
    }

    @Test func removeOnDoneAfterDoneReturnsFalse() {
        let ctx = Context()
        var runs = 0
        let registration = ctx.onDone { _ in runs += 1 }
        ctx.cancel()
        #expect(runs == 1)
        #expect(!ctx.removeOnDone(registration))

        let late = ctx.onDone { _ in runs += 1 }
        #expect(runs == 2)
        #expect(!ctx.removeOnDone(late))
    }

    @Test func registrationsAreDistinct() {
        let ctx = Context()
        let a = ctx.onDone { _ in }
        let b = ctx.onDone { _ in }
        #expect(a != b)
        #expect(ctx.removeOnDone(a))
        #expect(ctx.pendingCallbackCount == 1)
        #expect(ctx.removeOnDone(b))
        #expect(ctx.pendingCallbackCount == 0)
    }

    @Test func noCallbackIsRetainedAfterDone() {
        let ctx = Context()
        weak var weakToken: Token?
        do {
            let token = Token()
            weakToken = token
            ctx.onDone { _ in _ = token }
        }
        #expect(weakToken != nil)
        #expect(ctx.pendingCallbackCount == 1)

        ctx.cancel()
        #expect(weakToken == nil)
        #expect(ctx.pendingCallbackCount == 0)
    }

    @Test func removedCallbackIsReleased() {
        let ctx = Context()
        weak var weakToken: Token?
        let registration: Context.Registration
        do {
            let token = Token()
            weakToken = token
            registration = ctx.onDone { _ in _ = token }
        }
        #expect(weakToken != nil)
        #expect(ctx.removeOnDone(registration))
        #expect(weakToken == nil)
        #expect(ctx.pendingCallbackCount == 0)
    }

    // MARK: - Parent and child

    @Test func cancellingTheParentCancelsTheChildWithItsErrorAndCause() {
        let parent = Context()
        let child = Context(parent: parent)
        let grandchild = Context(parent: child)
        #expect(!child.isDone)
        #expect(parent.pendingCallbackCount == 1)
        #expect(child.pendingCallbackCount == 1)

        var childRuns: [ContextError] = []
        child.onDone { childRuns.append($0) }

        #expect(parent.cancel(.deadlineExceeded, cause: SomeError(code: 42)))
        #expect(child.err == .deadlineExceeded)
        #expect((child.cause as? SomeError) == SomeError(code: 42))
        #expect(grandchild.err == .deadlineExceeded)
        #expect((grandchild.cause as? SomeError) == SomeError(code: 42))
        #expect(childRuns == [.deadlineExceeded])
        #expect(parent.pendingCallbackCount == 0)
        #expect(child.pendingCallbackCount == 0)
        #expect(!child.cancel())
    }

    @Test func cancellingTheParentWithoutCauseGivesTheChildItsError() {
        let parent = Context()
        let child = Context(parent: parent)
        parent.cancel()
        #expect(child.err == .canceled)
        #expect((child.cause as? ContextError) == .canceled)
    }

    @Test func cancellingTheChildLeavesTheParentLive() {
        let parent = Context()
        var parentRuns = 0
        parent.onDone { _ in parentRuns += 1 }
        let child = Context(parent: parent)
        #expect(parent.pendingCallbackCount == 2)

        #expect(child.cancel(.canceled, cause: SomeError(code: 3)))
        #expect(child.err == .canceled)
        #expect((child.cause as? SomeError) == SomeError(code: 3))
        #expect(!parent.isDone)
        #expect(parent.err == nil)
        #expect(parent.cause == nil)
        #expect(parent.pendingCallbackCount == 1)
        #expect(parentRuns == 0)

        // The parent's later cancel does not reach the already-done child.
        parent.cancel(.deadlineExceeded)
        #expect(parentRuns == 1)
        #expect(child.err == .canceled)
        #expect((child.cause as? SomeError) == SomeError(code: 3))
    }

    @Test func cancellingTheOnlyChildEmptiesTheParent() {
        let parent = Context()
        let child = Context(parent: parent)
        #expect(parent.pendingCallbackCount == 1)
        child.cancel()
        #expect(parent.pendingCallbackCount == 0)
    }

    @Test func childOfADoneParentIsDone() {
        let parent = Context()
        parent.cancel(.deadlineExceeded, cause: SomeError(code: 9))
        let child = Context(parent: parent)
        #expect(child.isDone)
        #expect(child.err == .deadlineExceeded)
        #expect((child.cause as? SomeError) == SomeError(code: 9))
        #expect(!child.cancel())

        var runs: [ContextError] = []
        child.onDone { runs.append($0) }
        #expect(runs == [.deadlineExceeded])
        #expect(parent.pendingCallbackCount == 0)
    }

    @Test func childOfAParentCanceledWithoutCauseIsDoneWithItsError() {
        let parent = Context()
        parent.cancel()
        let child = Context(parent: parent)
        #expect(child.err == .canceled)
        #expect((child.cause as? ContextError) == .canceled)
    }

    @Test func liveChildDeallocatedRemovesItsRegistration() {
        let parent = Context()
        weak var weakChild: Context?
        do {
            let child = Context(parent: parent)
            weakChild = child
            #expect(parent.pendingCallbackCount == 1)
        }
        #expect(weakChild == nil)
        #expect(parent.pendingCallbackCount == 0)
        #expect(parent.cancel())
    }

    @Test func manyChildrenAreAllCanceledAndReleased() {
        let parent = Context()
        let children = (0..<5).map { _ in Context(parent: parent) }
        #expect(parent.pendingCallbackCount == 5)
        children[2].cancel()
        #expect(parent.pendingCallbackCount == 4)
        parent.cancel()
        #expect(children.allSatisfy { $0.err == .canceled })
        #expect(parent.pendingCallbackCount == 0)
    }

    /// A callback that releases the last reference to a live child while the parent cancels:
    /// the child's deinit unregisters its callback, which then must not run (it used to, with
    /// a dangling `unowned self`).
    @Test
    func childReleasedByAnEarlierCallbackDuringCancel() {
        let parent = Context()
        var child: Context? = nil
        parent.onDone { _ in child = nil }
        child = Context(parent: parent)
        parent.cancel()
        #expect(child == nil)
        #expect(parent.pendingCallbackCount == 0)
    }
}

/// Deadlines are informational on the context (a timer on the loop enforces them), and a child's
/// is the earlier of its own and its parent's.
@Suite struct ContextDeadlineTests {
    @Test func noDeadlineByDefault() {
        #expect(Context().deadline == nil)
        #expect(Context(parent: Context()).deadline == nil)
    }

    @Test func childTakesTheEarlierDeadline() {
        let now = ContinuousClock.now
        let parent = Context(parent: Context(), deadline: now + .seconds(10))
        #expect(Context(parent: parent, deadline: now + .seconds(1)).deadline == now + .seconds(1))
        #expect(Context(parent: parent, deadline: now + .seconds(60)).deadline == now + .seconds(10))
        #expect(Context(parent: parent).deadline == now + .seconds(10))
    }

    @Test func deadlineExceededCarriesGoText() {
        let context = Context(parent: Context(), deadline: .now)
        context.cancel(.deadlineExceeded)
        #expect(context.err == .deadlineExceeded)
        #expect("\(context.err!)" == "context deadline exceeded")
        #expect(context.cause as? ContextError == .deadlineExceeded)
    }
}
