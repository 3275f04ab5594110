import HTTPTypes

// The router's trie and the request path it walks, as bytes.
//
// Matching compares UTF-8 bytes where that gives the answer `String` would: a segment or an
// affix that is ASCII without CR (`simple`) has one Character per byte, and two such strings
// are equal exactly when their bytes are. Anything else (a non-ASCII segment, which `String`
// compares by canonical equivalence and counts in Characters; a CR, which joins a following
// LF into one Character) is compared as a `String`, as before.

/// A node of the route trie. Mutated under the router's lock before it freezes; read-only after.
final class RouteNode {
    /// Literal segments, by their text (`String` equality: canonical equivalence).
    var literals: [String: RouteNode] = [:]
    /// The simple keys of `literals`, by bytes: the lookup for a simple segment.
    var literalBytes = LiteralTable()
    /// Whether `literals` has a key that is not simple: then a lookup goes through `literals`
    /// (a non-ASCII key may equal an ASCII segment: `"\u{212A}" == "K"`).
    var hasComplexLiteral = false
    /// Captures with a literal prefix or suffix first (more specific), then whole-segment ones.
    var captures: [RouteCapture] = []
    var wildcard: RouteNode?
    var catchAll: RouteNode?
    /// A node's routes by method: a handful at most, so a scan beats hashing the method's text.
    var methods: [(method: HTTPRequest.Method, route: Route)] = []

    func route(for method: HTTPRequest.Method) -> Route? {
        for entry in methods where entry.method == method { return entry.route }
        return nil
    }

    func insert(_ segments: ArraySlice<RoutePattern.Segment>, route: Route) {
        guard let first = segments.first else {
            methods.removeAll { $0.method == route.method }
            methods.append((route.method, route))
            return
        }
        let rest = segments.dropFirst()
        switch first {
        case .literal(let text):
            if let node = literals[text] {
                node.insert(rest, route: route)
            } else {
                let node = RouteNode()
                literals[text] = node
                if PathSegments.isSimple(text.utf8) {
                    literalBytes.insert(Array(text.utf8), node)
                } else {
                    hasComplexLiteral = true
                }
                node.insert(rest, route: route)
            }
        case .capture(let prefix, let name, let suffix):
            if let existing = captures.first(where: { $0.prefix == prefix && $0.name == name && $0.suffix == suffix }) {
                existing.node.insert(rest, route: route)
            } else {
                let node = RouteNode()
                captures.append(RouteCapture(prefix: prefix, name: name, suffix: suffix, node: node))
                // Affixed captures before plain ones.
                captures.sort { ($0.prefix.count + $0.suffix.count) > ($1.prefix.count + $1.suffix.count) }
                node.insert(rest, route: route)
            }
        case .wildcard:
            let node = wildcard ?? RouteNode()
            wildcard = node
            node.insert(rest, route: route)
        case .catchAll:
            let node = catchAll ?? RouteNode()
            catchAll = node
            node.insert([][...], route: route)  // `**` takes the rest: nothing may follow it
        }
    }

    /// The node with routes that `path`'s segments from `index` on reach, filling `parameters`;
    /// backtracks (a failed branch leaves `parameters` as it found them).
    func find(_ path: PathSegments, _ index: Int, _ parameters: inout Parameters) -> RouteNode? {
        guard index < path.count else {
            if !methods.isEmpty { return self }
            if let catchAll, !catchAll.methods.isEmpty {
                parameters.append("**", "")
                return catchAll
            }
            return nil
        }
        let next = index + 1
        let segment = path[index]
        let simple = path.isSimple(index)
        /// The segment as a String, made only for a comparison that needs one.
        var text: String?

        let literal: RouteNode?
        if simple && !hasComplexLiteral {
            literal = literalBytes.find(segment)
        } else if literals.isEmpty {
            literal = nil
        } else {
            let string = String(decoding: segment, as: UTF8.self)
            text = string
            literal = literals[string]
        }
        if let literal, let found = literal.find(path, next, &parameters) { return found }

        for capture in captures {
            let value: String
            if simple && capture.isSimple {
                guard let captured = capture.value(in: segment) else { continue }
                value = captured
            } else {
                let string = text ?? String(decoding: segment, as: UTF8.self)
                text = string
                guard let captured = capture.value(in: string) else { continue }
                value = captured
            }
            let mark = parameters.values.count
            // At most one capture per segment left, and `**`: one allocation for them all.
            parameters.append(capture.name, value, reserving: path.count - index + 1)
            if let found = capture.node.find(path, next, &parameters) { return found }
            parameters.values.removeSubrange(mark...)
        }
        if let wildcard, let found = wildcard.find(path, next, &parameters) { return found }
        if let catchAll, !catchAll.methods.isEmpty {
            parameters.append("**", path.joined(from: index))
            return catchAll
        }
        return nil
    }
}

/// A capture segment: `{name}`, `:name`, `prefix{name}suffix`.
struct RouteCapture {
    let prefix: String
    let name: String
    let suffix: String
    let node: RouteNode
    private let prefixBytes: [UInt8]
    private let suffixBytes: [UInt8]
    /// Both affixes are simple: against a simple segment, bytes answer as Characters would.
    let isSimple: Bool

    init(prefix: String, name: String, suffix: String, node: RouteNode) {
        self.prefix = prefix
        self.name = name
        self.suffix = suffix
        self.node = node
        prefixBytes = Array(prefix.utf8)
        suffixBytes = Array(suffix.utf8)
        isSimple = PathSegments.isSimple(prefix.utf8) && PathSegments.isSimple(suffix.utf8)
    }

    /// The captured part of a simple `segment` (only when ``isSimple``), or `nil` when it does not match.
    func value(in segment: UnsafeBufferPointer<UInt8>) -> String? {
        let prefixCount = prefixBytes.count
        let suffixCount = suffixBytes.count
        guard segment.count > prefixCount + suffixCount else { return nil }
        let end = segment.count - suffixCount
        for offset in 0..<prefixCount where segment[offset] != prefixBytes[offset] { return nil }
        for offset in 0..<suffixCount where segment[end + offset] != suffixBytes[offset] { return nil }
        return String(decoding: UnsafeBufferPointer(rebasing: segment[prefixCount..<end]), as: UTF8.self)
    }

    /// The captured part of `segment` compared as Characters, or `nil` when it does not match.
    func value(in segment: String) -> String? {
        guard segment.count >= prefix.count + suffix.count + 1 && segment.hasPrefix(prefix) && segment.hasSuffix(suffix) else {
            return nil
        }
        return String(segment.dropFirst(prefix.count).dropLast(suffix.count))
    }
}

/// A node's simple literal keys, found by their bytes: a scan of a few, a hash table of more.
///
/// The table holds the registered keys only (requests never insert), so a lookup's probes
/// depend on the routes, not on what a client sends.
struct LiteralTable {
    /// Every key's bytes, one after another.
    private var storage: [UInt8] = []
    private var entries: [(start: Int, count: Int, node: RouteNode)] = []
    /// Open addressing, a power of two at least twice the entries: an entry's index + 1, 0 empty.
    /// Built once there are more than ``scanLimit`` entries.
    private var slots: [Int] = []
    private static let scanLimit = 8

    mutating func insert(_ key: [UInt8], _ node: RouteNode) {
        entries.append((storage.count, key.count, node))
        storage.append(contentsOf: key)
        guard entries.count > Self.scanLimit else { return }
        if slots.count < 2 * entries.count {
            slots = Array(repeating: 0, count: max(32, slots.count * 2))
            for index in entries.indices { place(index) }
        } else {
            place(entries.count - 1)
        }
    }

    private mutating func place(_ index: Int) {
        let entry = entries[index]
        let mask = slots.count - 1
        var slot = storage.withUnsafeBufferPointer {
            Self.hash(UnsafeBufferPointer(rebasing: $0[entry.start..<(entry.start + entry.count)]))
        } & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = index + 1
    }

    func find(_ key: UnsafeBufferPointer<UInt8>) -> RouteNode? {
        storage.withUnsafeBufferPointer { storage in
            if slots.isEmpty {
                for entry in entries where Self.equal(storage, entry.start, entry.count, key) { return entry.node }
                return nil
            }
            let mask = slots.count - 1
            var slot = Self.hash(key) & mask
            while true {
                let index = slots[slot]
                if index == 0 { return nil }
                let entry = entries[index - 1]
                if Self.equal(storage, entry.start, entry.count, key) { return entry.node }
                slot = (slot + 1) & mask
            }
        }
    }

    private static func equal(_ storage: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int,
                              _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        guard count == key.count else { return false }
        for offset in 0..<count where storage[start + offset] != key[offset] { return false }
        return true
    }

    /// FNV-1a.
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: hash ^ (hash >> 32))
    }
}

/// A request path split at `/` (empty segments left out) and percent-decoded per segment: each
/// segment a range of one byte buffer.
struct PathSegments {
    struct Segment {
        var start: Int
        var end: Int
        /// ASCII without CR: one Character per byte.
        var simple: Bool
    }

    let bytes: UnsafeBufferPointer<UInt8>
    let segments: UnsafeBufferPointer<Segment>

    var count: Int { segments.count }

    subscript(index: Int) -> UnsafeBufferPointer<UInt8> {
        let segment = segments[index]
        return UnsafeBufferPointer(rebasing: bytes[segment.start..<segment.end])
    }

    func isSimple(_ index: Int) -> Bool { segments[index].simple }

    /// The segments from `index` on, joined by `/` (what `**` captures).
    func joined(from index: Int) -> String {
        var total = count - index - 1
        for segment in segments[index...] { total += segment.end - segment.start }
        return String(unsafeUninitializedCapacity: total) { buffer in
            var offset = 0
            for position in index..<count {
                if position > index {
                    buffer[offset] = UInt8(ascii: "/")
                    offset += 1
                }
                let segment = self[position]
                _ = UnsafeMutableBufferPointer(rebasing: buffer[offset..<(offset + segment.count)]).initialize(from: segment)
                offset += segment.count
            }
            return offset
        }
    }

    /// ASCII without CR.
    static func isSimple(_ bytes: some Sequence<UInt8>) -> Bool {
        bytes.allSatisfy { $0 < 0x80 && $0 != 0x0D }
    }

    /// Calls `body` with `path` (UTF-8) split and decoded, or returns `nil` when a segment has a
    /// bad escape or decodes to bytes that are not UTF-8 (as `PercentDecoding.decode`).
    ///
    /// An ASCII path is split on its bytes (there a `/` is a Character of its own), into
    /// buffers on the stack. A path with other bytes is split as Characters, as it always was
    /// (a combining mark after `/` joins it into another Character).
    static func withSegments(of path: UnsafeBufferPointer<UInt8>, _ body: (PathSegments) -> RouteNode?) -> RouteNode? {
        var slashes = 0
        var escaped = false
        var ascii = true
        for byte in path {
            if byte == UInt8(ascii: "/") {
                slashes += 1
            } else if byte == UInt8(ascii: "%") {
                escaped = true
            } else if byte >= 0x80 {
                ascii = false
            }
        }
        guard ascii else { return withCharacterSegments(of: path, body) }
        return withUnsafeTemporaryAllocation(of: Segment.self, capacity: slashes + 1) { segments in
            guard escaped else {
                var count = 0
                var start = 0
                var simple = true
                for offset in 0..<path.count {
                    let byte = path[offset]
                    if byte == UInt8(ascii: "/") {
                        if offset > start {
                            segments[count] = Segment(start: start, end: offset, simple: simple)
                            count += 1
                        }
                        start = offset + 1
                        simple = true
                    } else if byte == 0x0D {
                        simple = false
                    }
                }
                if path.count > start {
                    segments[count] = Segment(start: start, end: path.count, simple: simple)
                    count += 1
                }
                return body(PathSegments(bytes: path, segments: UnsafeBufferPointer(rebasing: segments[..<count])))
            }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: path.count) { decoded in
                var count = 0
                var written = 0
                var start = 0
                var offset = 0
                while offset <= path.count {
                    guard offset == path.count || path[offset] == UInt8(ascii: "/") else {
                        offset += 1
                        continue
                    }
                    if offset > start {
                        let raw = UnsafeBufferPointer(rebasing: path[start..<offset])
                        let output = UnsafeMutableBufferPointer(rebasing: decoded[written...])
                        guard let length = PercentDecoding.decode(raw, into: output) else { return nil }
                        let value = UnsafeBufferPointer(rebasing: output[..<length])
                        let simple = isSimple(value)
                        if !simple && !value.allSatisfy({ $0 < 0x80 }) && String(validating: value, as: UTF8.self) == nil {
                            return nil
                        }
                        segments[count] = Segment(start: written, end: written + length, simple: simple)
                        count += 1
                        written += length
                    }
                    offset += 1
                    start = offset
                }
                return body(PathSegments(bytes: UnsafeBufferPointer(rebasing: decoded[..<written]),
                                         segments: UnsafeBufferPointer(rebasing: segments[..<count])))
            }
        }
    }

    /// The general case: a path with non-ASCII bytes, split as Characters and decoded as Strings.
    private static func withCharacterSegments(of path: UnsafeBufferPointer<UInt8>,
                                              _ body: (PathSegments) -> RouteNode?) -> RouteNode? {
        let text = String(decoding: path, as: UTF8.self)
        var bytes: [UInt8] = []
        var segments: [Segment] = []
        for raw in text.split(separator: "/", omittingEmptySubsequences: true) {
            guard let decoded = PercentDecoding.decode(raw) else { return nil }
            let start = bytes.count
            bytes.append(contentsOf: decoded.utf8)
            segments.append(Segment(start: start, end: bytes.count, simple: isSimple(decoded.utf8)))
        }
        return bytes.withUnsafeBufferPointer { bytes in
            segments.withUnsafeBufferPointer { segments in body(PathSegments(bytes: bytes, segments: segments)) }
        }
    }
}
