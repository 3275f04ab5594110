import Foundation

extension Process {
    /// Waits for the process to exit, for at most `timeout`; the one wait-with-timeout of these
    /// tests (greetd, greet-stress, nginx and its tools).
    ///
    /// If it is still running then, it is stopped: `SIGTERM`, up to `grace` to exit, then
    /// `SIGKILL`, and reaped, so that no child outlives the test. Polls every 5 ms (Foundation's
    /// `Process` has no timed wait). Blocks the calling thread.
    /// - Returns: whether it exited by itself within `timeout`.
    func exits(within timeout: TimeInterval, grace: TimeInterval = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            guard Date() < deadline else {
                terminate()
                let killAt = Date().addingTimeInterval(grace)
                while isRunning && Date() < killAt { Thread.sleep(forTimeInterval: 0.005) }
                if isRunning { _ = kill(processIdentifier, SIGKILL) }  // ESRCH: it exited meanwhile
                waitUntilExit()
                return false
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return true
    }
}
