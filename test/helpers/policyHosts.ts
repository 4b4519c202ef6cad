import type { CpuFlags, HostFacts } from "../../agent/host/hostFacts.js";
import { planResources } from "../../agent/host/resourcePolicy.js";
import type { DeploymentShape, ModelCandidate, PlanInput, ResourcePlan, ResourceRequest } from "../../agent/host/resourcePolicy.js";
import { findCatalogEntry, listCatalog } from "../../models/catalog.js";
import type { CatalogEntry } from "../../models/catalog.js";

// The resource policy's host table (real hosts, from the CF-SV8 to this 2-core machine)
// and the plan helpers that the policy's unit tests share.

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

export const NO_FLAGS: CpuFlags = {
  sse42: false,
  avx: false,
  avx2: false,
  avx512: false,
  avx512Vnni: false,
  avxVnni: false,
  amx: false,
  f16c: false,
  fma: false,
};
export const HASWELL_CLASS: CpuFlags = { ...NO_FLAGS, sse42: true, avx: true, avx2: true, f16c: true, fma: true };

export function host(overrides: Partial<HostFacts>): HostFacts {
  return {
    platform: "linux",
    arch: "x64",
    osRelease: "6.1.0",
    kernel: "#1 SMP",
    distro: "Debian GNU/Linux 12 (bookworm)",
    glibcVersion: "2.36",
    windowsVersion: null,
    totalMemBytes: 8 * GiB,
    freeMemBytes: 6 * GiB,
    availableMemBytes: 7 * GiB,
    swapTotalBytes: 0,
    swapFreeBytes: 0,
    physicalCores: 4,
    physicalCoresSource: "cpuinfo-topology",
    logicalCores: 4,
    cpuModel: "x86-64",
    cpuFlags: HASWELL_CLASS,
    memlockLimitBytes: 8 * MiB,
    memlockLimitSource: "rlimit",
    hasCapIpcLock: false,
    loadAverage: [0.1, 0.1, 0.1],
    unreadable: [],
    notes: [],
    ...overrides,
  };
}

/** Panasonic CF-SV8 beside an instrument: i5-8365U, 4 cores/8 threads, 16 GB, Ubuntu 20.04, memlock 64 KiB, no CAP_IPC_LOCK. */
export const CF_SV8 = host({
  cpuModel: "Intel(R) Core(TM) i5-8365U CPU @ 1.60GHz",
  physicalCores: 4,
  logicalCores: 8,
  totalMemBytes: 15_760 * MiB,
  freeMemBytes: 11_000 * MiB,
  availableMemBytes: 13_100 * MiB,
  swapTotalBytes: 2 * GiB,
  swapFreeBytes: 2 * GiB,
  distro: "Ubuntu 20.04.6 LTS",
  glibcVersion: "2.31",
  osRelease: "5.15.0-107-generic",
  memlockLimitBytes: 64 * 1024,
  hasCapIpcLock: false,
});
export const CF_SV8_UNLIMITED = { ...CF_SV8, memlockLimitBytes: null };

/** A Core 2 Duo instrument PC on Windows 10 with the CPU flags known (e.g. from the loaded CPU variant). */
export const core2 = (totalGiB: number, availableMiB: number): HostFacts =>
  host({
    platform: "win32",
    osRelease: "10.0.19045",
    kernel: "Windows 10 Pro",
    windowsVersion: "10.0.19045",
    distro: null,
    glibcVersion: null,
    cpuModel: "Intel(R) Core(TM)2 Duo CPU     E8400  @ 3.00GHz",
    cpuFlags: NO_FLAGS,
    physicalCores: 2,
    physicalCoresSource: "logical-count",
    logicalCores: 2,
    totalMemBytes: totalGiB * GiB,
    freeMemBytes: availableMiB * MiB,
    availableMemBytes: availableMiB * MiB,
    swapTotalBytes: null,
    swapFreeBytes: null,
    memlockLimitBytes: null,
    memlockLimitSource: "not-applicable",
    hasCapIpcLock: null,
    loadAverage: null,
  });
export const CORE2_2G = core2(2, 1_100);
export const CORE2_4G = core2(4, 2_900);
/** The same PC as the Windows probe really sees it: no CPU flags. */
export const CORE2_4G_UNKNOWN_FLAGS = { ...CORE2_4G, cpuFlags: null };

/** This machine: AMD EPYC VM, 2 cores, 24 GB, AVX2 but no AVX-512, root with CAP_IPC_LOCK, memlock 8 MiB. */
export const THIS_MACHINE = host({
  cpuModel: "AMD EPYC",
  physicalCores: 2,
  logicalCores: 2,
  totalMemBytes: 24_683_656 * 1024,
  freeMemBytes: 24_334_208 * 1024,
  availableMemBytes: 24_312_888 * 1024,
  memlockLimitBytes: 8 * MiB,
  hasCapIpcLock: true,
});

/** A 4 GB Linux box, 2 cores/4 threads with AVX2, memlock 64 KiB as an ordinary user. */
export const BOX_4G = host({
  cpuModel: "Intel(R) Core(TM) i3-7100U CPU @ 2.40GHz",
  physicalCores: 2,
  logicalCores: 4,
  totalMemBytes: 3_891 * MiB,
  freeMemBytes: 2_900 * MiB,
  availableMemBytes: 3_277 * MiB,
  memlockLimitBytes: 64 * 1024,
  hasCapIpcLock: false,
});

/** A server with AVX-512 VNNI. */
export const VNNI_SERVER = host({
  cpuModel: "Intel Xeon Gold 6230",
  physicalCores: 20,
  logicalCores: 40,
  totalMemBytes: 64 * GiB,
  availableMemBytes: 60 * GiB,
  cpuFlags: { ...HASWELL_CLASS, avx512: true, avx512Vnni: true },
  memlockLimitBytes: null,
});

/** An Alder Lake laptop: AVX2 and AVX-VNNI, no AVX-512, 16 GB. */
export const AVX_VNNI_LAPTOP = host({
  cpuModel: "12th Gen Intel(R) Core(TM) i5-1235U",
  physicalCores: 10,
  logicalCores: 12,
  totalMemBytes: 16 * GiB,
  availableMemBytes: 12 * GiB,
  cpuFlags: { ...HASWELL_CLASS, avxVnni: true },
});

/** A Sapphire Rapids server: AVX-512 VNNI and AMX. */
export const AMX_SERVER = host({
  cpuModel: "Intel(R) Xeon(R) Platinum 8480+",
  physicalCores: 56,
  logicalCores: 112,
  totalMemBytes: 256 * GiB,
  availableMemBytes: 240 * GiB,
  cpuFlags: { ...HASWELL_CLASS, avx512: true, avx512Vnni: true, amx: true },
  memlockLimitBytes: null,
});

/** A Linux VM whose /proc/cpuinfo has no flags line (the probe then reports cpuFlags null). */
export const NO_FLAGS_LINE = host({
  cpuModel: "QEMU Virtual CPU",
  physicalCores: 2,
  logicalCores: 2,
  cpuFlags: null,
  notes: ["/proc/cpuinfo has no flags line: CPU features unknown"],
});

export const AUTO: ResourceRequest = { threads: "auto", mlock: "auto", contextSize: "auto", parallelSequences: "auto" };

/** The catalog as the policy's candidates: a catalog entry plus `available`. */
export const catalog = (available: (entry: CatalogEntry) => boolean = () => true): { candidates: ModelCandidate[] } => ({
  candidates: listCatalog().map((entry) => ({ ...entry, available: available(entry) })),
});

export const footprintOf = (id: string) => {
  const entry = findCatalogEntry(id);
  if (!entry) throw new Error(`no catalog entry ${id}`);
  return entry.footprint;
};

export function plan(
  facts: HostFacts,
  shape: DeploymentShape,
  requested: Partial<ResourceRequest> = {},
  model: PlanInput["model"] = catalog(),
): ResourcePlan {
  return planResources({ facts, shape, requested: { ...AUTO, ...requested }, model });
}

export const HOSTS: Array<[string, HostFacts]> = [
  ["CF-SV8 (memlock 64 KiB)", CF_SV8],
  ["CF-SV8 (memlock unlimited)", CF_SV8_UNLIMITED],
  ["Core 2 Duo, 2 GB, Windows 10", CORE2_2G],
  ["Core 2 Duo, 4 GB, Windows 10", CORE2_4G],
  ["Core 2 Duo, 4 GB, flags unknown", CORE2_4G_UNKNOWN_FLAGS],
  ["this machine", THIS_MACHINE],
  ["4 GB box, memlock 64 KiB", BOX_4G],
  ["VNNI server", VNNI_SERVER],
  ["AVX-VNNI laptop", AVX_VNNI_LAPTOP],
  ["AMX server", AMX_SERVER],
  ["no flags line", NO_FLAGS_LINE],
];
export const SHAPES: DeploymentShape[] = ["on-instrument", "beside-instrument"];
