import { describe, expect, it } from "vitest";
import { probeHost } from "../../agent/host/hostProbe.js";
import { MIN_CONTEXT } from "../../agent/host/policy/contextDecisions.js";
import { estimateMemory } from "../../agent/host/policy/memoryEstimate.js";
import { CANDIDATE_MIN_CONTEXT } from "../../agent/host/policy/modelChoice.js";
import { findCatalogEntry, listCatalog } from "../../models/catalog.js";
import {
  MiB,
  GiB,
  CF_SV8,
  CF_SV8_UNLIMITED,
  CORE2_2G,
  CORE2_4G,
  CORE2_4G_UNKNOWN_FLAGS,
  THIS_MACHINE,
  BOX_4G,
  catalog,
  footprintOf,
  plan,
  HOSTS,
  SHAPES,
} from "../helpers/policyHosts.js";

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
