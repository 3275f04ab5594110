import Foundation
import EventHTTPSystem
import Testing

/// The CPUs greetd may run on: the affinity mask, and the cgroup v2 `cpu.max` quota read from a
/// cgroup tree laid out in a temporary directory.
@Suite struct CPULimitTests {
    @Test("cpu.max: a quota rounds up to whole CPUs, 'max' and nonsense are no cap")
    func cpuMax() {
        #expect(ProcessResources.cpuMaxLimit("max 100000\n") == nil)
        #expect(ProcessResources.cpuMaxLimit("100000 100000\n") == 1)
        #expect(ProcessResources.cpuMaxLimit("150000 100000\n") == 2)
        #expect(ProcessResources.cpuMaxLimit("200000 100000") == 2)
        #expect(ProcessResources.cpuMaxLimit("1000 100000\n") == 1)
        #expect(ProcessResources.cpuMaxLimit("") == nil)
        #expect(ProcessResources.cpuMaxLimit("x 100000") == nil)
        #expect(ProcessResources.cpuMaxLimit("100000 0") == nil)
    }

    @Test("the process's cgroup comes from its '0::' line; the smallest cpu.max up to the root counts")
    func cgroupTree() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let leaf = root.appendingPathComponent("system.slice/greetd.service")
        try FileManager.default.createDirectory(at: leaf, withIntermediateDirectories: true)
        let membership = root.appendingPathComponent("self-cgroup")
        try "1:cpu:/v1-only\n0::/system.slice/greetd.service\n".write(to: membership, atomically: true, encoding: .utf8)
        func limit() -> Int? { ProcessResources.cgroupCPULimit(cgroupFile: membership.path, cgroupRoot: root.path) }

        #expect(limit() == nil, "no cpu.max anywhere: no cap")
        try "max 100000\n".write(to: leaf.appendingPathComponent("cpu.max"), atomically: true, encoding: .utf8)
        #expect(limit() == nil)
        try "250000 100000\n".write(to: leaf.appendingPathComponent("cpu.max"), atomically: true, encoding: .utf8)
        #expect(limit() == 3)
        try "100000 100000\n".write(to: root.appendingPathComponent("system.slice/cpu.max"), atomically: true, encoding: .utf8)
        #expect(limit() == 1, "a parent's smaller quota caps the child")

        try "1:cpu:/v1-only\n".write(to: membership, atomically: true, encoding: .utf8)
        #expect(limit() == nil, "cgroup v1 only: no v2 line, no cap")
        #expect(ProcessResources.cgroupCPULimit(cgroupFile: root.appendingPathComponent("missing").path, cgroupRoot: root.path) == nil)
    }

    @Test("the affinity mask counts at least one CPU and no more than are online")
    func affinity() throws {
        #if os(Linux)
        let count = try #require(ProcessResources.affinityCPUCount())
        #expect(count >= 1 && count <= ProcessResources.onlineProcessorCount)
        #endif
    }
}
