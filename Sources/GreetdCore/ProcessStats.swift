import GreetdRules
import EventHTTPSystem

/// What `/metrics` reports about the process itself, read from the kernel when asked. Each
/// reader returns `nil` where its source does not exist (off Linux).
enum ProcessStats {
    /// Resident set size from `/proc/self/statm` (pages × page size).
    static func residentMemoryBytes() -> Int? {
        guard let fields = readFields("/proc/self/statm"), fields.count >= 2, let resident = Int(fields[1]) else { return nil }
        return resident * ProcessResources.pageSize
    }

    /// Open descriptors, counted in `/proc/self/fd`.
    static func openFileDescriptors() -> Int? {
        guard let count = try? SystemFiles.entryCount(atPath: "/proc/self/fd") else { return nil }
        return count - 1  // the descriptor opendir itself holds
    }

    /// User plus system CPU time of the whole process, in seconds (`getrusage`); 0 if it cannot
    /// be read.
    static func cpuSeconds() -> Double {
        (try? ProcessResources.cpuTime())?.secondsValue ?? 0
    }

    /// When the process started, in seconds since 1970; never 0. Read once, on first use (when
    /// the first ``GreetdMetrics`` is made, early in the process's life), then constant.
    ///
    /// The kernel's figure when it can be read: the boot time (`btime` in `/proc/stat`) plus the
    /// process's start in clock ticks after boot (field 22 of `/proc/self/stat`). Where
    /// `/proc/stat` is hidden (the unit's `ProcSubset=pid`) or missing (off Linux), the wall
    /// clock at first use, which is as close to the start as anything a process can see.
    static let startTimeSeconds: Double = kernelStartTimeSeconds() ?? {
        let now = SystemClock.realtime()
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }()

    /// The kernel's start time of this process (see ``startTimeSeconds``); `nil` if either file
    /// cannot be read.
    static func kernelStartTimeSeconds() -> Double? {
        guard let stat = readText("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may hold spaces), from field 3 on.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        // /proc/stat has a line per CPU (and a long `intr` line) before `btime`: well over 4 KiB
        // on a large machine.
        guard let boot = readText("/proc/stat", limit: 1 << 20)?.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let bootTime = Double(boot.dropFirst("btime ".count)), bootTime > 0 else { return nil }
        return bootTime + ticks / Double(ProcessResources.clockTicksPerSecond)
    }

    private static func readFields(_ path: String) -> [Substring]? {
        readText(path).map { $0.split(separator: " ") }
    }

    /// The first `limit` bytes of a small text file; `nil` if it is missing, unreadable or empty.
    private static func readText(_ path: String, limit: Int = 4096) -> String? {
        guard let text = try? SystemFiles.readText(atPath: path, limit: limit), !text.isEmpty else { return nil }
        return text
    }
}
