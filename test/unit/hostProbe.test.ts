import { describe, expect, it } from "vitest";
import {
  isInitialUserNamespace,
  parseCapEff,
  parseCpuinfo,
  parseLimits,
  parseMeminfo,
  parseOsRelease,
  probeHost,
} from "../../agent/host/hostProbe.js";
import type { SystemInfo } from "../../agent/host/hostProbe.js";

const I5_8365U_FLAGS =
  "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx " +
  "pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 " +
  "monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave " +
  "avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb invpcid_single ssbd ibrs ibpb stibp tpr_shadow vnmi flexpriority ept vpid " +
  "ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid mpx rdseed adx smap clflushopt intel_pt xsaveopt xsavec xgetbv1 xsaves " +
  "dtherm ida arat pln pts hwp hwp_notify hwp_act_window hwp_epp md_clear flush_l1d arch_capabilities";

/** /proc/cpuinfo of a Core i5-8365U: 4 cores, 8 threads, sibling threads listed after the cores. */
const CPUINFO_4C8T = Array.from(
  { length: 8 },
  (_, i) => `processor\t: ${i}
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 142
model name\t: Intel(R) Core(TM) i5-8365U CPU @ 1.60GHz
stepping\t: 12
cpu MHz\t\t: 1900.000
cache size\t: 6144 KB
physical id\t: 0
siblings\t: 8
core id\t\t: ${i % 4}
cpu cores\t: 4
apicid\t\t: ${(i % 4) * 2 + (i >= 4 ? 1 : 0)}
fpu\t\t: yes
flags\t\t: ${I5_8365U_FLAGS}
bogomips\t: 3799.90
`,
).join("\n");

/** A VM that exposes no topology fields (seen on some hypervisors), with AVX-512 VNNI. */
const CPUINFO_VM_NO_TOPOLOGY = `processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel Xeon Processor (Cascadelake)
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni hypervisor

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel Xeon Processor (Cascadelake)
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni hypervisor

processor\t: 2
vendor_id\t: GenuineIntel
model name\t: Intel Xeon Processor (Cascadelake)
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni hypervisor
`;

/** A Core 2 Duo: topology fields, no SSE4.2, no AVX. */
const CPUINFO_CORE2 = [0, 1]
  .map(
    (i) => `processor\t: ${i}
model name\t: Intel(R) Core(TM)2 Duo CPU     E8400  @ 3.00GHz
physical id\t: 0
siblings\t: 2
core id\t\t: ${i}
cpu cores\t: 2
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx lm constant_tsc pni dtes64 monitor ds_cpl vmx est tm2 ssse3 cx16 xtpr pdcm sse4_1 xsave lahf_lm
`,
  )
  .join("\n");

const MEMINFO_16G = `MemTotal:       16135356 kB
MemFree:        11023456 kB
MemAvailable:   13456789 kB
Buffers:          345678 kB
Cached:          2345678 kB
SwapCached:            0 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`;

const LIMITS_64K = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max stack size            8388608              unlimited            bytes     
Max locked memory         65536                65536                bytes     
Max address space         unlimited            unlimited            bytes     
`;

const STATUS_NO_CAPS = `Name:\tnode
VmLck:\t       0 kB
CapInh:\t0000000000000000
CapPrm:\t0000000000000000
CapEff:\t0000000000000000
CapBnd:\t000001ffffffffff
`;

describe("parseCpuinfo", () => {
  it("counts unique (physical id, core id) pairs: 4 cores, 8 threads", () => {
    const cpu = parseCpuinfo(CPUINFO_4C8T);
    expect(cpu.logicalCores).toBe(8);
    expect(cpu.physicalCores).toBe(4);
    expect(cpu.physicalCoresSource).toBe("cpuinfo-topology");
    expect(cpu.modelName).toBe("Intel(R) Core(TM) i5-8365U CPU @ 1.60GHz");
    expect(cpu.flags).toEqual({
      sse42: true,
      avx: true,
      avx2: true,
      avx512: false,
      avx512Vnni: false,
      avxVnni: false,
      amx: false,
      f16c: true,
      fma: true,
    });
  });

  it("reports physical cores unknown on a VM without physical id/core id", () => {
    const cpu = parseCpuinfo(CPUINFO_VM_NO_TOPOLOGY);
    expect(cpu.logicalCores).toBe(3);
    expect(cpu.physicalCores).toBeNull();
    expect(cpu.physicalCoresSource).toBeNull();
    expect(cpu.flags?.avx512).toBe(true);
    expect(cpu.flags?.avx512Vnni).toBe(true);
  });

  it("falls back to 'cpu cores' per package when core ids are missing", () => {
    const text = [0, 1, 2, 3].map((i) => `processor\t: ${i}\nphysical id\t: ${i < 2 ? 0 : 1}\ncpu cores\t: 2\n`).join("\n");
    const cpu = parseCpuinfo(text);
    expect(cpu.physicalCores).toBe(4);
    expect(cpu.physicalCoresSource).toBe("cpuinfo-cpu-cores");
    expect(cpu.flags).toBeNull();
  });

  it("sees a Core 2 Duo without SSE4.2 or AVX", () => {
    const cpu = parseCpuinfo(CPUINFO_CORE2);
    expect(cpu.physicalCores).toBe(2);
    expect(cpu.flags?.sse42).toBe(false);
    expect(cpu.flags?.avx).toBe(false);
    expect(cpu.flags?.avx2).toBe(false);
  });

  it("reads AMX and AVX-VNNI flags", () => {
    const cpu = parseCpuinfo("processor\t: 0\nflags\t\t: avx avx2 avx_vnni amx_tile amx_int8\n");
    expect(cpu.flags?.amx).toBe(true);
    expect(cpu.flags?.avxVnni).toBe(true);
  });

  it("returns zero processors for empty text", () => {
    expect(parseCpuinfo("").logicalCores).toBe(0);
  });
});

describe("parseMeminfo", () => {
  it("converts kB (KiB) to bytes", () => {
    const mem = parseMeminfo(MEMINFO_16G);
    expect(mem.totalBytes).toBe(16135356 * 1024);
    expect(mem.availableBytes).toBe(13456789 * 1024);
    expect(mem.freeBytes).toBe(11023456 * 1024);
    expect(mem.swapTotalBytes).toBe(2097148 * 1024);
    expect(mem.swapFreeBytes).toBe(2097148 * 1024);
  });

  it("has no MemAvailable on old kernels but an estimate from free + buffers + cached", () => {
    const mem = parseMeminfo("MemTotal: 2000 kB\nMemFree: 500 kB\nBuffers: 100 kB\nCached: 300 kB\n");
    expect(mem.availableBytes).toBeNull();
    expect(mem.reclaimableEstimateBytes).toBe(900 * 1024);
    expect(mem.swapTotalBytes).toBeNull();
  });
});

describe("parseLimits", () => {
  it("reads a 64 KiB memlock limit", () => {
    expect(parseLimits(LIMITS_64K)).toEqual({ softBytes: 65536, hardBytes: 65536 });
  });

  it("reads unlimited as null", () => {
    const text = LIMITS_64K.replace("65536                65536", "unlimited            unlimited");
    expect(parseLimits(text)).toEqual({ softBytes: null, hardBytes: null });
  });

  it("keeps soft and hard apart", () => {
    const text = LIMITS_64K.replace("65536                65536", "8388608              unlimited");
    expect(parseLimits(text)).toEqual({ softBytes: 8388608, hardBytes: null });
  });

  it("returns null when the row is missing", () => {
    expect(parseLimits("Limit  Soft Limit  Hard Limit  Units\n")).toBeNull();
  });
});

describe("isInitialUserNamespace", () => {
  it("is the host's identity map only: a container's own user namespace does not lift the memlock limit", () => {
    expect(isInitialUserNamespace("         0          0 4294967295\n")).toBe(true);
    expect(isInitialUserNamespace("         0     100000      65536\n")).toBe(false);
    expect(isInitialUserNamespace("0 1000 1\n1 100000 65536\n")).toBe(false);
    expect(isInitialUserNamespace("")).toBe(false);
  });
});

describe("parseCapEff", () => {
  it("finds CAP_IPC_LOCK (bit 14) in a root capability set", () => {
    expect(parseCapEff("CapEff:\t000001fffeffffff\n")).toBe(true);
  });
  it("finds it alone", () => {
    expect(parseCapEff("CapEff:\t0000000000004000\n")).toBe(true);
  });
  it("sees it missing for an ordinary user", () => {
    expect(parseCapEff(STATUS_NO_CAPS)).toBe(false);
    expect(parseCapEff("CapEff:\t0000000000003fff\n")).toBe(false);
  });
  it("returns null without a CapEff line", () => {
    expect(parseCapEff("Name:\tnode\n")).toBeNull();
  });
});

describe("parseOsRelease", () => {
  it("reads PRETTY_NAME without quotes", () => {
    expect(parseOsRelease('NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\nVERSION_ID="20.04"\n')).toBe("Ubuntu 20.04.6 LTS");
    expect(parseOsRelease("PRETTY_NAME=Alpine\n")).toBe("Alpine");
    expect(parseOsRelease("NAME=x\n")).toBeNull();
  });
});

function fakeSystem(overrides: Partial<SystemInfo>): SystemInfo {
  return {
    platform: "linux",
    arch: "x64",
    totalmem: () => 4 * 1024 ** 3,
    freemem: () => 1024 ** 3,
    cpus: () => [{ model: "Fake CPU" }, { model: "Fake CPU" }],
    release: () => "5.4.0",
    version: () => "#1 SMP",
    loadavg: () => [0.5, 0.4, 0.3],
    glibcVersion: () => "2.31",
    ...overrides,
  };
}

describe("probeHost with injected sources", () => {
  it("reads every Linux source from fixtures", async () => {
    const files: Record<string, string> = {
      "/proc/meminfo": MEMINFO_16G,
      "/proc/cpuinfo": CPUINFO_4C8T,
      "/proc/self/limits": LIMITS_64K,
      "/proc/self/status": STATUS_NO_CAPS,
      "/etc/os-release": 'PRETTY_NAME="Ubuntu 20.04.6 LTS"\n',
    };
    const facts = await probeHost({
      system: fakeSystem({}),
      readText: async (p) => {
        const text = files[p];
        if (text === undefined) throw Object.assign(new Error("no"), { code: "ENOENT" });
        return text;
      },
    });
    expect(facts.physicalCores).toBe(4);
    expect(facts.logicalCores).toBe(8);
    expect(facts.totalMemBytes).toBe(16135356 * 1024);
    expect(facts.availableMemBytes).toBe(13456789 * 1024);
    expect(facts.memlockLimitBytes).toBe(65536);
    expect(facts.memlockLimitSource).toBe("rlimit");
    expect(facts.hasCapIpcLock).toBe(false);
    expect(facts.distro).toBe("Ubuntu 20.04.6 LTS");
    expect(facts.glibcVersion).toBe("2.31");
    expect(facts.cpuModel).toContain("i5-8365U");
    expect(facts.unreadable).toEqual([]);
  });

  it("never throws when nothing can be read, and lists what was not read", async () => {
    const facts = await probeHost({
      system: fakeSystem({}),
      readText: async () => {
        throw Object.assign(new Error("denied"), { code: "EACCES" });
      },
    });
    expect(facts.unreadable).toHaveLength(5);
    expect(facts.unreadable[0]).toBe("/proc/meminfo: EACCES");
    expect(facts.totalMemBytes).toBe(4 * 1024 ** 3);
    expect(facts.availableMemBytes).toBe(1024 ** 3);
    expect(facts.physicalCores).toBe(2);
    expect(facts.physicalCoresSource).toBe("logical-count");
    expect(facts.memlockLimitSource).toBe("unknown");
    expect(facts.hasCapIpcLock).toBeNull();
    expect(facts.notes.length).toBeGreaterThan(0);
  });

  it("falls back to logical CPUs on a VM without topology and says so", async () => {
    const facts = await probeHost({
      system: fakeSystem({}),
      readText: async (p) => (p === "/proc/cpuinfo" ? CPUINFO_VM_NO_TOPOLOGY : ""),
    });
    expect(facts.physicalCores).toBe(3);
    expect(facts.physicalCoresSource).toBe("logical-count");
    expect(facts.notes.join(" ")).toMatch(/physical cores assumed equal to the 3 logical CPUs/);
  });

  it("uses the os module on Windows and notes what it cannot know", async () => {
    let reads = 0;
    const facts = await probeHost({
      system: fakeSystem({ platform: "win32", release: () => "10.0.19045", loadavg: () => [0, 0, 0], glibcVersion: () => null }),
      readText: async () => {
        reads++;
        return "";
      },
    });
    expect(reads).toBe(0);
    expect(facts.platform).toBe("win32");
    expect(facts.windowsVersion).toBe("10.0.19045");
    expect(facts.glibcVersion).toBeNull();
    expect(facts.memlockLimitSource).toBe("not-applicable");
    expect(facts.cpuFlags).toBeNull();
    expect(facts.loadAverage).toBeNull();
    expect(facts.physicalCores).toBe(2);
    expect(facts.physicalCoresSource).toBe("logical-count");
    expect(facts.notes.join(" ")).toMatch(/physical cores/i);
  });
});

describe("probeHost on this machine", () => {
  it("returns sane facts", async () => {
    const facts = await probeHost();
    expect(facts.platform).toBe("linux");
    expect(facts.physicalCores).toBeGreaterThanOrEqual(1);
    expect(facts.logicalCores).toBeGreaterThanOrEqual(facts.physicalCores);
    expect(facts.totalMemBytes).toBeGreaterThan(0);
    expect(facts.availableMemBytes).toBeGreaterThan(0);
    expect(facts.availableMemBytes).toBeLessThanOrEqual(facts.totalMemBytes);
    expect(facts.cpuFlags).not.toBeNull();
    expect(facts.memlockLimitSource).toBe("rlimit");
    expect(typeof facts.hasCapIpcLock).toBe("boolean");
    expect(facts.glibcVersion).toMatch(/^\d+\.\d+/);
    expect(facts.unreadable).toEqual([]);
  });
});
