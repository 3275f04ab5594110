#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `/metrics` reports about the process itself, read from the kernel when asked. Each
/// reader returns `nil` where its source does not exist (off Linux).
enum ProcessStats {
    /// Resident set size from `/proc/self/statm` (pages × page size).
    static func residentMemoryBytes() -> Int? {
        guard let fields = readFields("/proc/self/statm"), fields.count >= 2, let resident = Int(fields[1]) else { return nil }
        return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Open descriptors, counted in `/proc/self/fd`.
    static func openFileDescriptors() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return count - 1  // the descriptor opendir itself holds
    }

    /// User plus system CPU time of the whole process, in seconds (`getrusage`).
    static func cpuSeconds() -> Double {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
        func seconds(_ tv: timeval) -> Double { Double(tv.tv_sec) + Double(tv.tv_usec) / 1_000_000 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// When the process started, in seconds since 1970: the boot time (`btime` in `/proc/stat`)
    /// plus the process's start in clock ticks after boot (field 22 of `/proc/self/stat`).
    static func startTimeSeconds() -> Double? {
        guard let stat = readText("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may hold spaces), from field 3 on.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        guard let boot = readText("/proc/stat")?.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let bootTime = Double(boot.dropFirst("btime ".count)) else { return nil }
        return bootTime + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    private static func readFields(_ path: String) -> [Substring]? {
        readText(path).map { $0.split(separator: " ") }
    }

    /// The first 4 KiB of a small text file.
    private static func readText(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = fread(&bytes, 1, bytes.count, file)
        guard count > 0 else { return nil }
        return String(decoding: bytes[0..<count], as: UTF8.self)
    }
}
