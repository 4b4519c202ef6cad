import { describe, expect, it } from "vitest";
import { planResources } from "../../agent/host/resourcePolicy.js";
import type { DraftCandidate, PlanInput } from "../../agent/host/resourcePolicy.js";
import { draftsFor, findCatalogEntry } from "../../models/catalog.js";
import { AUTO, CF_SV8_UNLIMITED, THIS_MACHINE, catalog, footprintOf } from "../helpers/policyHosts.js";

// The resource policy's call on `--draft auto` / `--lookup auto`, and what it does with an
// explicit choice. On this 2-core machine a draft ran slower than plain decoding (README,
// "Speculative decoding"), so auto must say no here whatever is present.

const target = "qwen2.5-3b-instruct-q4_k_m";
const onlyTarget = { candidates: catalog().candidates.filter((c) => c.id === target) };
const draft = (present: boolean, id = "qwen2.5-0.5b-instruct-q4_k_m"): DraftCandidate => ({
  label: id,
  footprint: footprintOf(id),
  present,
  catalogId: id,
});

function planWith(facts: PlanInput["facts"], speculation: { draft: string; lookup: "on" | "off" | "auto" }, candidate?: DraftCandidate) {
  return planResources({
    facts,
    shape: "beside-instrument",
    requested: { ...AUTO, speculation: { ...speculation, draftMax: 4 } },
    model: onlyTarget,
    draftCandidate: candidate,
  });
}

describe("speculative decoding in the plan", () => {
  it("auto is off on 2 physical cores even with the catalog's draft present, and says why", () => {
    const p = planWith(THIS_MACHINE, { draft: "auto", lookup: "auto" }, draft(true));
    expect(p.speculation.value.kind).toBe("off");
    expect(p.speculation.reason).toMatch(/2 physical cores/);
    expect(p.speculation.reason).toMatch(/--draft <model> or --lookup on/);
  });

  it("auto takes the present catalog draft on a 4-core laptop with memory to spare", () => {
    const p = planWith(CF_SV8_UNLIMITED, { draft: "auto", lookup: "auto" }, draft(true));
    expect(p.speculation.value).toEqual({ kind: "draft", draft: "qwen2.5-0.5b-instruct-q4_k_m", draftMax: 4 });
    expect(p.speculation.reason).toMatch(/catalog's draft/);
  });

  it("auto falls back to prompt lookup when the draft is not downloaded, naming the pull command", () => {
    const p = planWith(CF_SV8_UNLIMITED, { draft: "auto", lookup: "auto" }, draft(false));
    expect(p.speculation.value.kind).toBe("lookup");
    expect(p.speculation.reason).toContain("models pull qwen2.5-0.5b-instruct-q4_k_m");
    const off = planWith(CF_SV8_UNLIMITED, { draft: "auto", lookup: "off" }, draft(false));
    expect(off.speculation.value.kind).toBe("off");
  });

  it("auto refuses a draft as large as the model", () => {
    const big = { ...draft(true), footprint: footprintOf(target), label: "big.gguf" };
    const p = planWith(CF_SV8_UNLIMITED, { draft: "auto", lookup: "off" }, big);
    expect(p.speculation.value.kind).toBe("off");
    expect(p.speculation.reason).toMatch(/100% of the model's size/);
  });

  it("an explicit --draft is used on any host, with a warning when it cannot pay", () => {
    const self = { ...draft(true), footprint: footprintOf(target), label: "self.gguf" };
    const p = planWith(THIS_MACHINE, { draft: "self.gguf", lookup: "off" }, self);
    expect(p.speculation.value).toEqual({ kind: "draft", draft: "self.gguf", draftMax: 4 });
    expect(p.warnings.join(" ")).toMatch(/self.gguf is 100% of the model's size/);
  });

  it("--lookup on is used on any host; both off is off", () => {
    expect(planWith(THIS_MACHINE, { draft: "off", lookup: "on" }).speculation.value.kind).toBe("lookup");
    expect(planWith(CF_SV8_UNLIMITED, { draft: "off", lookup: "off" }).speculation.value.kind).toBe("off");
  });

  it("the catalog pairs Qwen2.5 targets with Qwen2.5 0.5B and Qwen3 with Qwen3 0.6B, and drafts with nothing", () => {
    const ids = (id: string) => draftsFor(findCatalogEntry(id)!).map((e) => e.id);
    expect(ids("qwen2.5-3b-instruct-q4_k_m")).toEqual(expect.arrayContaining(["qwen2.5-0.5b-instruct-q4_k_m"]));
    expect(ids("qwen2.5-3b-instruct-q4_k_m").every((id) => id.startsWith("qwen2.5-0.5b"))).toBe(true);
    expect(ids("qwen3-4b-q4_k_m")).toEqual(["qwen3-0.6b-q8_0"]);
    expect(ids("qwen2.5-0.5b-instruct-q8_0")).toEqual([]);
  });
});
