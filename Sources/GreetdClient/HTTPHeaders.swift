/// One header field of a response, as it arrived: the name keeps its case, the value has its
/// surrounding spaces and tabs trimmed.
public struct HTTPHeaderField: Sendable, Equatable, CustomStringConvertible {
    /// The field name, as sent (`Content-Length`, `x-request-id`).
    public let name: String
    /// The field value without leading or trailing spaces and tabs.
    public let value: String

    /// A field with `name` and `value` as given.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// `Name: value`.
    public var description: String { "\(name): \(value)" }
}

/// The header fields of a response in arrival order, looked up by name without regard to case
/// (`headers["content-length"]` finds `Content-Length`), as HTTP field names are.
///
/// A plain value: copy and share it freely.
public struct HTTPHeaders: Sendable, Equatable, RandomAccessCollection, CustomStringConvertible {
    /// Every field, in the order the response sent them; repeated names stay repeated.
    public private(set) var fields: [HTTPHeaderField]

    /// Headers holding `fields`, in that order.
    public init(_ fields: [HTTPHeaderField] = []) {
        self.fields = fields
    }

    /// The first field's position (`RandomAccessCollection`).
    public var startIndex: Int { fields.startIndex }
    /// Past the last field's position (`RandomAccessCollection`).
    public var endIndex: Int { fields.endIndex }
    /// The field at `position`, in arrival order.
    public subscript(position: Int) -> HTTPHeaderField { fields[position] }

    /// The value of the first field called `name` (any case), or `nil` if there is none.
    public subscript(name: String) -> String? {
        fields.first { Self.sameName($0.name, name) }?.value
    }

    /// Every value of the fields called `name` (any case), in arrival order.
    public func values(of name: String) -> [String] {
        fields.filter { Self.sameName($0.name, name) }.map(\.value)
    }

    /// Whether some field is called `name` (any case).
    public func contains(_ name: String) -> Bool {
        fields.contains { Self.sameName($0.name, name) }
    }

    /// One `Name: value` line per field.
    public var description: String { fields.map(\.description).joined(separator: "\n") }

    mutating func append(_ field: HTTPHeaderField) {
        fields.append(field)
    }

    /// ASCII case-insensitive comparison: field names are tokens, ASCII only.
    static func sameName(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && zip(a.utf8, b.utf8).allSatisfy { lowered($0) == lowered($1) }
    }

    private static func lowered(_ byte: UInt8) -> UInt8 {
        (65...90).contains(byte) ? byte + 32 : byte
    }
}
