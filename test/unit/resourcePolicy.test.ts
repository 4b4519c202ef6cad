import { describe, expect, it } from "vitest";
import type { CpuFlags, HostFacts } from "../../agent/host/hostFacts.js";
import { probeHost } from "../../agent/host/hostProbe.js";
import { CANDIDATE_MIN_CONTEXT, estimateMemory, MIN_CONTEXT, planResources } from "../../agent/host/resourcePolicy.js";
import type { DeploymentShape, ModelCandidate, PlanInput, ResourcePlan, ResourceRequest } from "../../agent/host/resourcePolicy.js";
import { findCatalogEntry, listCatalog } from "../../models/catalog.js";
import type { CatalogEntry } from "../../models/catalog.js";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

const NO_FLAGS: CpuFlags = {
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
const HASWELL_CLASS: CpuFlags = { ...NO_FLAGS, sse42: true, avx: true, avx2: true, f16c: true, fma: true };

function host(overrides: Partial<HostFacts>): HostFacts {
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
const CF_SV8 = host({
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
const CF_SV8_UNLIMITED = { ...CF_SV8, memlockLimitBytes: null };

/** A Core 2 Duo instrument PC on Windows 10 with the CPU flags known (e.g. from the loaded CPU variant). */
const core2 = (totalGiB: number, availableMiB: number): HostFacts =>
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
const CORE2_2G = core2(2, 1_100);
const CORE2_4G = core2(4, 2_900);
/** The same PC as the Windows probe really sees it: no CPU flags. */
const CORE2_4G_UNKNOWN_FLAGS = { ...CORE2_4G, cpuFlags: null };

/** This machine: AMD EPYC VM, 2 cores, 24 GB, AVX2 but no AVX-512, root with CAP_IPC_LOCK, memlock 8 MiB. */
const THIS_MACHINE = host({
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
const BOX_4G = host({
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
const VNNI_SERVER = host({
  cpuModel: "Intel Xeon Gold 6230",
  physicalCores: 20,
  logicalCores: 40,
  totalMemBytes: 64 * GiB,
  availableMemBytes: 60 * GiB,
  cpuFlags: { ...HASWELL_CLASS, avx512: true, avx512Vnni: true },
  memlockLimitBytes: null,
});

/** An Alder Lake laptop: AVX2 and AVX-VNNI, no AVX-512, 16 GB. */
const AVX_VNNI_LAPTOP = host({
  cpuModel: "12th Gen Intel(R) Core(TM) i5-1235U",
  physicalCores: 10,
  logicalCores: 12,
  totalMemBytes: 16 * GiB,
  availableMemBytes: 12 * GiB,
  cpuFlags: { ...HASWELL_CLASS, avxVnni: true },
});

/** A Sapphire Rapids server: AVX-512 VNNI and AMX. */
const AMX_SERVER = host({
  cpuModel: "Intel(R) Xeon(R) Platinum 8480+",
  physicalCores: 56,
  logicalCores: 112,
  totalMemBytes: 256 * GiB,
  availableMemBytes: 240 * GiB,
  cpuFlags: { ...HASWELL_CLASS, avx512: true, avx512Vnni: true, amx: true },
  memlockLimitBytes: null,
});

/** A Linux VM whose /proc/cpuinfo has no flags line (the probe then reports cpuFlags null). */
const NO_FLAGS_LINE = host({
  cpuModel: "QEMU Virtual CPU",
  physicalCores: 2,
  logicalCores: 2,
  cpuFlags: null,
  notes: ["/proc/cpuinfo has no flags line: CPU features unknown"],
});

const AUTO: ResourceRequest = { threads: "auto", mlock: "auto", contextSize: "auto", parallelSequences: "auto" };

/** The catalog as the policy's candidates: a catalog entry plus `available`. */
const catalog = (available: (entry: CatalogEntry) => boolean = () => true): { candidates: ModelCandidate[] } => ({
  candidates: listCatalog().map((entry) => ({ ...entry, available: available(entry) })),
});

const footprintOf = (id: string) => {
  const entry = findCatalogEntry(id);
  if (!entry) throw new Error(`no catalog entry ${id}`);
  return entry.footprint;
};

function plan(
  facts: HostFacts,
  shape: DeploymentShape,
  requested: Partial<ResourceRequest> = {},
  model: PlanInput["model"] = catalog(),
): ResourcePlan {
  return planResources({ facts, shape, requested: { ...AUTO, ...requested }, model });
}

const HOSTS: Array<[string, HostFacts]> = [
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
const SHAPES: DeploymentShape[] = ["on-instrument", "beside-instrument"];

describe("planResources over the host table", () => {
  for (const [name, facts] of HOSTS) {
    for (const shape of SHAPES) {
      it(`${name}, ${shape}: threads within the cores left by the reserve, reasons everywhere`, () => {
        const p = plan(facts, shape);
        const coresLeft = facts.physicalCores - p.reserve.cores;
        expect(p.threads.value).toBeGreaterThanOrEqual(1);
        expect(p.threads.value).toBeLessThanOrEqual(Math.max(1, coresLeft));
        expect(p.threads.value).toBeLessThanOrEqual(8);
        for (const decision of [p.model, p.threads, p.mlock, p.contextSize, p.parallelSequences, p.reserve, p.memory]) {
          expect(decision.reason.length).toBeGreaterThan(20);
        }
        expect(p.threads.reason).toContain(String(facts.physicalCores));
        expect(p.contextSize.value).toBeGreaterThanOrEqual(MIN_CONTEXT);
        expect(p.memory.totalBytes).toBe(p.memory.modelBytes + p.memory.kvBytes + p.memory.computeOverheadBytes);
        expect(p.memory.fits).toBe(p.memory.totalBytes <= p.memory.budgetBytes);
        if (!p.memory.fits) expect(p.warnings.join(" ")).toMatch(/\d+ MiB/);
        if (p.mlock.value) expect(p.memory.fits).toBe(true);
      });
    }
  }
});

describe("CF-SV8 beside the instrument", () => {
  const p = plan(CF_SV8, "beside-instrument");

  it("keeps one of 4 physical cores for the OS and runs 3 threads", () => {
    expect(p.reserve.cores).toBe(1);
    expect(p.threads.value).toBe(3);
    expect(p.threads.reason).toMatch(/4 physical cores minus 1 reserved = 3/);
  });

  it("chooses the largest model that fits: Qwen3 4B in Q4_K_M, as the CPU has no VNNI", () => {
    expect(p.model.id).toBe("qwen3-4b-q4_k_m");
    expect(p.model.reason).toMatch(/no VNNI\/AMX/);
    expect(p.contextSize.value).toBe(4096);
    expect(p.parallelSequences.value).toBe(2);
    expect(p.memory.fits).toBe(true);
  });

  it("turns mlock off because of the 64 KiB limit, and says how to fix it", () => {
    expect(p.mlock.value).toBe(false);
    expect(p.mlock.reason).toContain("64 KiB");
    expect(p.mlock.reason).toContain("LimitMEMLOCK=infinity");
    expect(p.mlock.reason).toContain("ulimit -l unlimited");
  });

  it("says so once as a notice (logged at info), not a warning: auto running unlocked is no fault", () => {
    expect(p.notices.filter((n) => n.startsWith("mlock auto: the model runs unlocked"))).toHaveLength(1);
    expect(p.warnings.join(" ")).not.toContain("mlock");
  });

  it("warns that glibc 2.31 cannot load the prebuilt binaries", () => {
    expect(p.warnings.join(" ")).toMatch(/glibc 2\.31 .*2\.34/);
  });

  it("turns mlock on when the limit is unlimited", () => {
    const unlimited = plan(CF_SV8_UNLIMITED, "beside-instrument");
    expect(unlimited.mlock.value).toBe(true);
    expect(unlimited.mlock.reason).toMatch(/unlimited/);
  });

  it("warns but keeps mlock on when it is requested against the 64 KiB limit", () => {
    const forced = plan(CF_SV8, "beside-instrument", { mlock: "on" });
    expect(forced.mlock.value).toBe(true);
    expect(forced.warnings.join(" ")).toMatch(/will probably fail: .*64 KiB/);
  });

  it("on the instrument itself keeps 40% of RAM and a core", () => {
    const on = plan(CF_SV8, "on-instrument");
    expect(on.reserve.memMiB).toBe(Math.round(15_760 * 0.4));
    expect(on.reserve.reason).toContain("6,304 MiB");
    expect(on.reserve.cores).toBe(1);
    expect(on.threads.value).toBe(3);
  });
});

describe("Core 2 Duo instrument PC on Windows 10", () => {
  it("with 2 GB on the instrument nothing fits: the plan says so with numbers and names the smallest model", () => {
    const p = plan(CORE2_2G, "on-instrument");
    expect(p.memory.fits).toBe(false);
    expect(p.memory.budgetBytes).toBe(0);
    expect(p.model.id).toBe("qwen2.5-0.5b-instruct-q4_k_m");
    expect(p.warnings.join(" ")).toMatch(/No catalog model fits: .*needs [\d,]+ MiB.*budget is 0 MiB/);
    expect(p.mlock.value).toBe(false);
    expect(p.threads.value).toBe(1);
    expect(p.reserve.cores).toBe(1);
  });

  it("with 4 GB beside an instrument prefers a model up to 1B (no AVX2) and one thread per core", () => {
    const p = plan(CORE2_4G, "beside-instrument");
    const chosen = findCatalogEntry(p.model.id);
    expect(chosen?.parameterCount).toBeLessThanOrEqual(1e9);
    expect(p.model.id).toBe("qwen3-0.6b-q8_0");
    expect(p.model.reason).toMatch(/no AVX2 \(not even AVX\)/);
    expect(p.threads.value).toBe(2);
    expect(p.contextSize.value).toBe(2048);
    expect(p.contextSize.reason).toMatch(/less than 8 GiB/);
    expect(p.parallelSequences.value).toBe(1);
  });

  it("allows mlock on Windows when memory fits (VirtualLock, no memlock limit)", () => {
    const p = plan(CORE2_4G, "beside-instrument", {}, footprintOf("qwen2.5-0.5b-instruct-q4_k_m"));
    expect(p.mlock.value).toBe(true);
    expect(p.mlock.reason).toMatch(/VirtualLock/);
  });

  it("with 4 GB on the instrument and the default 2 GiB reserve nothing fits; a smaller reserve is honoured", () => {
    const strict = plan(CORE2_4G, "on-instrument");
    expect(strict.reserve.memMiB).toBe(2048);
    expect(strict.memory.fits).toBe(false);
    const relaxed = plan(CORE2_4G, "on-instrument", { reserveMemMiB: 1024 });
    expect(relaxed.reserve.memMiB).toBe(1024);
    expect(relaxed.reserve.reason).toMatch(/1,024 MiB of memory as requested/);
    expect(relaxed.memory.fits).toBe(true);
    expect(relaxed.threads.value).toBe(1);
  });

  it("without known CPU flags does not apply the AVX2 rule and says the flags are unknown", () => {
    const p = plan(CORE2_4G_UNKNOWN_FLAGS, "beside-instrument");
    expect(p.model.reason).toMatch(/CPU flags unknown/);
    expect(p.memory.fits).toBe(true);
  });
});

describe("this machine (2 cores, 24 GB)", () => {
  it("runs 2 threads, one sequence, and auto mlock: CAP_IPC_LOCK lifts the 8 MiB limit here (a 2.6 GB mlock succeeds as root)", () => {
    const p = plan(THIS_MACHINE, "beside-instrument");
    expect(p.threads.value).toBe(2);
    expect(p.reserve.cores).toBe(0);
    expect(p.parallelSequences.value).toBe(1);
    expect(p.parallelSequences.reason).toMatch(/2 physical cores/);
    expect(p.mlock.value).toBe(true);
    expect(p.mlock.reason).toMatch(/has CAP_IPC_LOCK, which lifts the limit/);
    expect(p.mlock.reason).toMatch(/8 MiB/);
    expect(p.model.id).toBe("qwen3-4b-q4_k_m");
    expect(p.contextSize.value).toBe(4096);
  });

  it("on the instrument keeps one of the 2 cores: 1 thread", () => {
    const p = plan(THIS_MACHINE, "on-instrument");
    expect(p.reserve.cores).toBe(1);
    expect(p.threads.value).toBe(1);
  });

  it("with the real probe never plans more threads than physical cores", async () => {
    const facts = await probeHost();
    const p = plan(facts, "beside-instrument");
    expect(p.threads.value).toBeLessThanOrEqual(facts.physicalCores);
    expect(p.threads.value).toBeGreaterThanOrEqual(1);
  });
});

describe("4 GB Linux box with a 64 KiB memlock limit", () => {
  it("picks the largest model that fits at 2048 tokens and leaves mlock off with the reason", () => {
    const p = plan(BOX_4G, "beside-instrument");
    const chosen = findCatalogEntry(p.model.id);
    if (!chosen) throw new Error("plan named no catalog model");
    expect(estimateMemory(chosen.footprint, CANDIDATE_MIN_CONTEXT, 1).totalBytes).toBeLessThanOrEqual(p.memory.budgetBytes);
    const larger = listCatalog().filter((e) => e.parameterCount > chosen.parameterCount);
    for (const e of larger) {
      expect(estimateMemory(e.footprint, CANDIDATE_MIN_CONTEXT, 1).totalBytes, e.id).toBeGreaterThan(p.memory.budgetBytes);
    }
    expect(p.mlock.value).toBe(false);
    expect(p.threads.value).toBe(2);
  });

  it("names the 64 KiB limit and the fix when the model would fit", () => {
    const p = plan(BOX_4G, "beside-instrument", {}, footprintOf("qwen2.5-0.5b-instruct-q4_k_m"));
    expect(p.memory.fits).toBe(true);
    expect(p.mlock.value).toBe(false);
    expect(p.mlock.reason).toMatch(/64 KiB.*469 MiB.*CAP_IPC_LOCK/);
    expect(p.mlock.reason).toContain("LimitMEMLOCK=infinity");
  });

  it("shrinks the context before refusing: the largest size that fits, never below 512", () => {
    const tight = { ...BOX_4G, availableMemBytes: 3_000 * MiB };
    const fp = footprintOf("qwen3-1.7b-q8_0");
    const p = plan(tight, "beside-instrument", {}, fp);
    expect(p.contextSize.value).toBeLessThan(2048);
    expect(p.contextSize.value).toBeGreaterThanOrEqual(MIN_CONTEXT);
    expect(p.memory.fits).toBe(true);
    expect(estimateMemory(fp, p.contextSize.value, 1).totalBytes).toBeLessThanOrEqual(p.memory.budgetBytes);
    expect(estimateMemory(fp, 2048, 1).totalBytes).toBeGreaterThan(p.memory.budgetBytes);
    expect(p.contextSize.reason).toMatch(/shrunk/);
  });

  it("stops at 512 tokens and warns when even that does not fit", () => {
    const p = plan(BOX_4G, "beside-instrument", {}, footprintOf("qwen3-4b-q8_0"));
    expect(p.contextSize.value).toBe(512);
    expect(p.memory.fits).toBe(false);
    expect(p.warnings.join(" ")).toMatch(/qwen3-4b-q8_0 does not fit: it needs [\d,]+ MiB .* budget is [\d,]+ MiB/);
  });
});

describe("requested values are honoured", () => {
  it("keeps explicit threads above the physical cores but warns", () => {
    const p = plan(THIS_MACHINE, "beside-instrument", { threads: 4 });
    expect(p.threads.value).toBe(4);
    expect(p.warnings.join(" ")).toMatch(/4 threads requested on 2 physical cores/);
  });

  it("warns when explicit threads eat into the reserved cores", () => {
    const p = plan(CF_SV8, "on-instrument", { threads: 4 });
    expect(p.threads.value).toBe(4);
    expect(p.warnings.join(" ")).toMatch(/leaves 3/);
  });

  it("keeps explicit context, parallel sequences, reserve and mlock off", () => {
    const p = plan(CF_SV8_UNLIMITED, "beside-instrument", {
      contextSize: 1024,
      parallelSequences: 3,
      reserveCores: 2,
      reserveMemMiB: 4096,
      mlock: "off",
    });
    expect(p.contextSize.value).toBe(1024);
    expect(p.parallelSequences.value).toBe(3);
    expect(p.reserve.cores).toBe(2);
    expect(p.reserve.memMiB).toBe(4096);
    expect(p.threads.value).toBe(2);
    expect(p.mlock.value).toBe(false);
    expect(p.memory.kvBytes).toBe(footprintOf(p.model.id).kvBytesPerToken * 1024 * 3);
  });

  it("warns about a context beyond the trained length or below 512", () => {
    const fp = footprintOf("qwen2.5-0.5b-instruct-q8_0");
    expect(plan(THIS_MACHINE, "beside-instrument", { contextSize: 65_536 }, fp).warnings.join(" ")).toMatch(/exceeds the 32,768 tokens/);
    expect(plan(THIS_MACHINE, "beside-instrument", { contextSize: 256 }, fp).warnings.join(" ")).toMatch(/below 512/);
  });

  it("sizes the model choice with an explicit context", () => {
    const p = plan(BOX_4G, "beside-instrument", { contextSize: 16_384 });
    const chosen = footprintOf(p.model.id);
    expect(estimateMemory(chosen, 16_384, 1).totalBytes).toBeLessThanOrEqual(p.memory.budgetBytes);
    expect(p.model.reason).toMatch(/16,384-token context/);
  });
});

describe("model choice", () => {
  it("prefers Q8_0 for models up to 1B on a CPU with AVX-512 VNNI", () => {
    const small = plan(
      VNNI_SERVER,
      "beside-instrument",
      {},
      catalog((c) => c.parameterCount < 1e9),
    );
    expect(small.model.id).toBe("qwen3-0.6b-q8_0");
    const qwen25 = plan(
      VNNI_SERVER,
      "beside-instrument",
      {},
      catalog((c) => c.baseModel === "qwen2.5-0.5b-instruct"),
    );
    expect(qwen25.model.id).toBe("qwen2.5-0.5b-instruct-q8_0");
    expect(qwen25.model.reason).toMatch(/VNNI/);
  });

  it("prefers Q4_K_M for the same small model without VNNI", () => {
    const p = plan(
      CF_SV8,
      "beside-instrument",
      {},
      catalog((c) => c.baseModel === "qwen2.5-0.5b-instruct"),
    );
    expect(p.model.id).toBe("qwen2.5-0.5b-instruct-q4_k_m");
  });

  it("prefers Q4_K_M above 1B even with VNNI", () => {
    expect(plan(VNNI_SERVER, "beside-instrument").model.id).toBe("qwen3-4b-q4_k_m");
  });

  it("skips models that are not available", () => {
    const p = plan(
      CF_SV8,
      "beside-instrument",
      {},
      catalog((c) => !c.id.startsWith("qwen3-4b")),
    );
    expect(p.model.id).toBe("qwen2.5-3b-instruct-q4_k_m");
    expect(p.model.reason).toMatch(/8 of 10 catalog models are available/);
  });

  it("scales parallel sequences with cores on a roomy host", () => {
    expect(plan(VNNI_SERVER, "beside-instrument").parallelSequences.value).toBe(4);
  });

  it("halves an unknown core count of 4+ logical CPUs rather than oversubscribe", () => {
    const ht = { ...CF_SV8, physicalCores: 8, physicalCoresSource: "logical-count" as const };
    const p = plan(ht, "beside-instrument");
    expect(p.threads.value).toBe(3);
    expect(p.threads.reason).toMatch(/half of the 8 logical CPUs/);
  });
});

describe("quantization between entries of one base model", () => {
  const QWEN25_05B = "qwen2.5-0.5b-instruct";
  const onlyQwen25 = catalog((c) => c.baseModel === QWEN25_05B);
  /** The policy's need for a catalog model at the context candidates are sized with. */
  const needOf = (id: string): number => estimateMemory(footprintOf(id), CANDIDATE_MIN_CONTEXT, 1).totalBytes;

  it("chooses Q8_0 on a CPU with AVX-VNNI and says why", () => {
    const p = plan(AVX_VNNI_LAPTOP, "beside-instrument", {}, onlyQwen25);
    expect(p.model.id).toBe("qwen2.5-0.5b-instruct-q8_0");
    expect(p.model.reason).toMatch(
      /Q8_0 over Q4_K_M: this CPU has AVX-VNNI, where Q8_0 runs models up to 1B faster than Q4_K_M .*NOTES\.md.*, and it fits/,
    );
  });

  it("chooses Q8_0 on a CPU with AVX-512 VNNI and AMX, naming both", () => {
    const p = plan(AMX_SERVER, "beside-instrument", {}, onlyQwen25);
    expect(p.model.id).toBe("qwen2.5-0.5b-instruct-q8_0");
    expect(p.model.reason).toMatch(/this CPU has AVX-512 VNNI and AMX/);
  });

  it("keeps Q4_K_M on an AVX2-only CPU (this machine)", () => {
    const p = plan(THIS_MACHINE, "beside-instrument", {}, onlyQwen25);
    expect(p.model.id).toBe("qwen2.5-0.5b-instruct-q4_k_m");
    expect(p.model.reason).toMatch(/Q4_K_M over Q8_0: the CPU has no VNNI\/AMX .*so the smaller Q4_K_M is kept/);
  });

  it("keeps Q4_K_M when /proc/cpuinfo has no flags line", () => {
    const p = plan(NO_FLAGS_LINE, "beside-instrument", {}, onlyQwen25);
    expect(p.model.id).toBe("qwen2.5-0.5b-instruct-q4_k_m");
    expect(p.model.reason).toMatch(/Q4_K_M over Q8_0: CPU flags unknown, so VNNI\/AMX cannot be assumed/);
  });

  it("falls back to Q4_K_M on a VNNI CPU when Q8_0 does not fit, with both sizes in the reason", () => {
    const q4 = needOf("qwen2.5-0.5b-instruct-q4_k_m");
    const q8 = needOf("qwen2.5-0.5b-instruct-q8_0");
    expect(q8).toBeGreaterThan(q4);
    const reserveMemMiB = 512;
    const tight = { ...AVX_VNNI_LAPTOP, totalMemBytes: 2 * GiB, availableMemBytes: reserveMemMiB * MiB + Math.round((q4 + q8) / 2) };
    const p = plan(tight, "beside-instrument", { reserveMemMiB });
    expect(p.model.id).toBe("qwen2.5-0.5b-instruct-q4_k_m");
    expect(p.memory.fits).toBe(true);
    expect(p.model.reason).toMatch(
      /Q4_K_M: this CPU has AVX-VNNI, .*so Q8_0 would be preferred, but qwen2\.5-0\.5b-instruct-q8_0 needs [\d,]+ MiB, more than the [\d,]+ MiB budget/,
    );
  });

  it("says so when the preferred Q8_0 is not available", () => {
    const p = plan(
      AVX_VNNI_LAPTOP,
      "beside-instrument",
      {},
      catalog((c) => c.baseModel === QWEN25_05B && c.quant === "Q4_K_M"),
    );
    expect(p.model.id).toBe("qwen2.5-0.5b-instruct-q4_k_m");
    expect(p.model.reason).toMatch(/so Q8_0 would be preferred, but qwen2\.5-0\.5b-instruct-q8_0 is not available/);
  });

  it("keeps Q4_K_M above 1B on a VNNI CPU and says the preference stops at 1B", () => {
    const p = plan(
      AVX_VNNI_LAPTOP,
      "beside-instrument",
      {},
      catalog((c) => c.baseModel === "qwen2.5-1.5b-instruct"),
    );
    expect(p.model.id).toBe("qwen2.5-1.5b-instruct-q4_k_m");
    expect(p.model.reason).toMatch(/Q4_K_M over Q8_0: this CPU has AVX-VNNI, but Q8_0 is preferred there only for models up to 1B/);
  });

  it("says when a model has only one quantization in the catalog", () => {
    const p = plan(CORE2_4G, "beside-instrument");
    expect(p.model.id).toBe("qwen3-0.6b-q8_0");
    expect(p.model.reason).toMatch(/Q8_0: the only quantization of qwen3-0\.6b in the catalog/);
  });

  it("leaves an explicitly named model as it is, whatever the CPU", () => {
    for (const facts of [AVX_VNNI_LAPTOP, AMX_SERVER, THIS_MACHINE, NO_FLAGS_LINE]) {
      const p = plan(facts, "beside-instrument", {}, footprintOf("qwen2.5-0.5b-instruct-q4_k_m"));
      expect(p.model.id).toBe("qwen2.5-0.5b-instruct-q4_k_m");
      expect(p.model.reason).toMatch(/named explicitly/);
    }
  });
});

describe("mlock auto", () => {
  it("never locks the demo model, whatever the host allows", () => {
    const demo: PlanInput["model"] = { ...footprintOf("qwen2.5-0.5b-instruct-q4_k_m"), demo: true };
    const p = plan(CF_SV8_UNLIMITED, "beside-instrument", {}, demo);
    expect(p.mlock.value).toBe(false);
    expect(p.mlock.reason).toContain("demo model");
    expect(p.notices).toEqual([]);
  });

  it("--mlock on still plans the lock the limit rules out, and warns", () => {
    const p = plan(CF_SV8, "beside-instrument", { mlock: "on" });
    expect(p.mlock.value).toBe(true);
    expect(p.mlock.reason).toContain("probably not take effect");
  });
});
