import EventHTTPCore

/// How a client gives up on a request, the three ways real clients do.
public enum ClientAbort: String, CaseIterable, Sendable, CustomStringConvertible {
    /// `close(2)`: the kernel sends a FIN (Ctrl+C on curl). With unread bytes in the receive
    /// buffer Linux sends an RST instead; ``ClientSocket`` reads eagerly, so that buffer is empty.
    case fin
    /// `SO_LINGER` with a zero timeout, then `close(2)`: the kernel sends an RST at once and the
    /// socket skips `TIME_WAIT` (a killed process, a load balancer giving up).
    case rst
    /// `shutdown(SHUT_WR)`: a FIN on the sending side only. The socket keeps reading until the
    /// server closes its side, and only then closes.
    case half

    /// The raw value, `fin`, `rst` or `half`, as flags and test names spell it.
    public var description: String { rawValue }
}

/// What a ``ClientSocket`` reports to its delegate, on the loop thread.
public enum ClientSocketEvent: Equatable, Sendable {
    /// The non-blocking connect finished; the socket is ``ClientSocket/State/open``.
    case connected
    /// The last bytes that ``ClientSocket/send(_:)`` had to queue have left.
    case sent
    /// Bytes arrived; ``ClientSocket/response`` holds them. Several reads may be reported at once.
    case received
    /// The server ended the stream (FIN, read returned 0). The socket is now closed.
    case closedByPeer
    /// The connect, a read or a write failed (`ECONNREFUSED`, `ETIMEDOUT` for a connect
    /// timeout, `ECONNRESET`, `EMSGSIZE` for a response over the size limit). The socket is now closed.
    case failed(LibeventError)
}

/// The object a ``ClientSocket`` reports to. No closure: thousands of sockets cost no capture
/// contexts.
public protocol ClientSocketDelegate: AnyObject {
    /// Called on the loop thread. The delegate may close or drop the socket from inside.
    func clientSocket(_ socket: ClientSocket, didReport event: ClientSocketEvent)
}
