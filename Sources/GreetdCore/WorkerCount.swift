import EventHTTPSystem

/// How many worker loops greetd runs, and which limit chose that number.
///
/// Without `--workers`, greetd runs one loop per CPU it may actually run on, in the spirit of
/// Go 1.25's container-aware GOMAXPROCS: the CPUs in its affinity mask (`taskset`, a cpuset),
/// capped by its cgroup v2 CPU quota (`cpu.max`, rounded up), and at least 1. A loop per host
/// core would oversubscribe a CPU-limited container on a large host.
public struct WorkerCount: Sendable, Equatable {
    /// The limit that decided the count: what the start line's `workers_from=` says.
    public enum Source: String, Sendable, Equatable, CustomStringConvertible {
        /// `--workers` was given.
        case flag
        /// The CPUs in the affinity mask (`sched_getaffinity`).
        case affinity
        /// The cgroup v2 `cpu.max` quota, lower than the affinity mask.
        case cgroup
        /// The online processors, where the affinity mask cannot be read (Darwin).
        case cores

        /// The raw value, as logged.
        public var description: String { rawValue }
    }

    /// The number of worker loops.
    public var count: Int
    /// Which limit decided ``count``.
    public var source: Source

    /// A count and its source, as given.
    public init(count: Int, source: Source) {
        self.count = count
        self.source = source
    }

    /// The most loops greetd runs by default; `--workers` above it is refused.
    public static let maximum = 256

    /// The rule on given figures: `flag` when set; else `affinity` (or `online` where it is
    /// unknown), lowered to `cgroupLimit` when that is smaller; never below 1 nor above
    /// ``maximum``.
    public static func resolve(flag: Int?, affinity: Int?, cgroupLimit: Int?, online: Int) -> WorkerCount {
        if let flag { return WorkerCount(count: flag, source: .flag) }
        var chosen = affinity.map { WorkerCount(count: $0, source: .affinity) } ?? WorkerCount(count: online, source: .cores)
        if let cgroupLimit, cgroupLimit < chosen.count { chosen = WorkerCount(count: cgroupLimit, source: .cgroup) }
        chosen.count = min(max(1, chosen.count), maximum)
        return chosen
    }

    /// The rule on this process: its affinity mask, its cgroup's `cpu.max`, the online count.
    public static func detect(flag: Int?) -> WorkerCount {
        if let flag { return WorkerCount(count: flag, source: .flag) }
        return resolve(flag: nil, affinity: ProcessResources.affinityCPUCount(),
                       cgroupLimit: ProcessResources.cgroupCPULimit(), online: ProcessResources.onlineProcessorCount)
    }
}
