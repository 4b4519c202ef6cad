import { describe, expect, it } from "vitest";
import { estimateMemory } from "../../agent/host/policy/memoryEstimate.js";
import { CANDIDATE_MIN_CONTEXT } from "../../agent/host/policy/modelChoice.js";
import type { PlanInput } from "../../agent/host/resourcePolicy.js";
import {
  MiB,
  GiB,
  CF_SV8,
  CF_SV8_UNLIMITED,
  CORE2_4G,
  THIS_MACHINE,
  BOX_4G,
  VNNI_SERVER,
  AVX_VNNI_LAPTOP,
  AMX_SERVER,
  NO_FLAGS_LINE,
  catalog,
  footprintOf,
  plan,
} from "../helpers/policyHosts.js";

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
      /Q8_0 over Q4_K_M: this CPU has AVX-VNNI, where Q8_0 runs models up to 1B faster than Q4_K_M \(Qwen2\.5-0\.5B.s Q4_K_M is really 6\.35 bits\/weight\), and it fits/,
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
