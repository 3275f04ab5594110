import EventHTTPSystem
#if canImport(Glibc)
public import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

/// An IPv4 or IPv6 socket address, as resolved or as bound.
public struct IPEndpoint: Sendable, Hashable, CustomStringConvertible {
    var storage: sockaddr_storage
    let length: socklen_t

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    /// Whether this is an IPv6 address.
    public var isIPv6: Bool { Int32(storage.ss_family) == AF_INET6 }

    /// Whether this is the IPv6 wildcard `::` (every address), which greetd binds dual stack.
    public var isIPv6Wildcard: Bool {
        guard isIPv6 else { return false }
        return withUnsafeBytes(of: storage) { bytes in
            let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
            return bytes[offset..<(offset + 16)].allSatisfy { $0 == 0 }
        }
    }

    /// The numeric host: `127.0.0.1`, `::1`.
    public var host: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var copy = storage
        withUnsafePointer(to: &copy) { pointer in
            pointer.withMemoryRebound(to: UInt8.self, capacity: MemoryLayout<sockaddr_storage>.size) { bytes in
                // inet_ntop fails only for an unknown family (EAFNOSUPPORT) or a short buffer
                // (ENOSPC); the family is one of the two, and the buffer fits either.
                if isIPv6 {
                    bytes.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                        var addr = sin6.pointee.sin6_addr
                        _ = inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count))
                    }
                } else {
                    bytes.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                        var addr = sin.pointee.sin_addr
                        _ = inet_ntop(AF_INET, &addr, &buffer, socklen_t(buffer.count))
                    }
                }
            }
        }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The port, in host byte order.
    public var port: UInt16 {
        get {
            withUnsafeBytes(of: storage) { bytes in
                let offset = isIPv6 ? MemoryLayout<sockaddr_in6>.offset(of: \.sin6_port)! : MemoryLayout<sockaddr_in>.offset(of: \.sin_port)!
                return UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            }
        }
        set {
            let offset = isIPv6 ? MemoryLayout<sockaddr_in6>.offset(of: \.sin6_port)! : MemoryLayout<sockaddr_in>.offset(of: \.sin_port)!
            withUnsafeMutableBytes(of: &storage) { bytes in
                bytes.storeBytes(of: newValue.bigEndian, toByteOffset: offset, as: UInt16.self)
            }
        }
    }

    /// `127.0.0.1:8080` or `[::1]:8080`.
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Calls `body` with the address as a `sockaddr` pointer and its length.
    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { bytes in
            body(bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    /// The local address of a bound socket (`getsockname`).
    public static func local(of fd: Int32) throws(LibeventError) -> IPEndpoint {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        do {
            try withUnsafeMutablePointer(to: &storage) { (pointer) throws(SystemError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(SystemError) in
                    _ = try SystemCalls.systemCall("getsockname") { getsockname(fd, address, &length) }  // 0: success
                }
            }
        } catch {
            throw LibeventError(error)
        }
        return IPEndpoint(storage: storage, length: length)
    }

    /// Every TCP address `host` resolves to, without duplicates, in resolver order.
    /// `localhost` gives both `127.0.0.1` and `::1` where the resolver lists both. A bracketed
    /// host (`[::1]`, as in a URL) is read without its brackets.
    public static func resolve(host bracketed: String, port: UInt16) throws(LibeventError) -> [IPEndpoint] {
        var host = bracketed
        if host.count >= 2, host.hasPrefix("["), host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            // `[]` must not become the empty host, which getaddrinfo reads as "every interface".
            guard !host.isEmpty else { throw .addressResolution(host: bracketed, message: "empty brackets") }
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = SocketKind.stream
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        // getaddrinfo reports through its result, not errno; EAI_SYSTEM alone means "see errno".
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &list)
        guard status == 0 else {
            let message = status == EAI_SYSTEM ? Errno.current.description : String(cString: gai_strerror(status))
            throw .addressResolution(host: host, message: message)
        }
        defer { freeaddrinfo(list) }
        var addresses: [IPEndpoint] = []
        var cursor = list
        while let entry = cursor {
            if let sa = entry.pointee.ai_addr, entry.pointee.ai_family == AF_INET || entry.pointee.ai_family == AF_INET6 {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(entry.pointee.ai_addrlen)))
                }
                let address = IPEndpoint(storage: storage, length: entry.pointee.ai_addrlen)
                if !addresses.contains(address) { addresses.append(address) }
            }
            cursor = entry.pointee.ai_next
        }
        guard !addresses.isEmpty else {
            throw .addressResolution(host: host, message: "no IPv4 or IPv6 address")
        }
        return addresses
    }

    /// `127.0.0.1` or `::1` on `port`.
    public static func loopback(ipv6: Bool, port: UInt16) -> IPEndpoint {
        var storage = sockaddr_storage()
        let length: Int
        if ipv6 {
            let sin6 = sockaddr_in6(address: in6addr_loopback, port: port)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
            length = MemoryLayout<sockaddr_in6>.size
        } else {
            let sin = sockaddr_in(address: in_addr(s_addr: in_addr_t(0x7f00_0001).bigEndian), port: port)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
            length = MemoryLayout<sockaddr_in>.size
        }
        return IPEndpoint(storage: storage, length: socklen_t(length))
    }

    /// Byte equality of the first `length` bytes: the same family, address, port (and scope).
    public static func == (lhs: IPEndpoint, rhs: IPEndpoint) -> Bool {
        lhs.length == rhs.length && withUnsafeBytes(of: lhs.storage) { a in
            withUnsafeBytes(of: rhs.storage) { b in a.prefix(Int(lhs.length)).elementsEqual(b.prefix(Int(rhs.length))) }
        }
    }

    /// Hashes the same bytes ``==(_:_:)`` compares.
    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: storage) { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0.prefix(Int(length)))) }
    }
}
