import { AgentError } from "../../../common/errors.js";
import { formatBytes } from "../../../common/format.js";
import type { HostFacts } from "../hostFacts.js";
import { estimateMemory } from "./memoryEstimate.js";
import { n } from "./planText.js";
import type { ModelCandidate, ModelFootprint } from "./planTypes.js";

/** Which catalog model (and which quantization of it) the plan names, and why. */

/** The context a model must fit with to be chosen from the catalog. */
export const CANDIDATE_MIN_CONTEXT = 2048;
const ONE_BILLION = 1.05e9;

/** The int8 dot-product instructions that make Q8_0 fast, by name; empty when none or unknown. */
function int8Features(facts: HostFacts): string[] {
  const flags = facts.cpuFlags;
  if (flags === null) return [];
  return [flags.avx512Vnni && "AVX-512 VNNI", flags.avxVnni && "AVX-VNNI", flags.amx && "AMX"].filter(
    (name): name is string => typeof name === "string",
  );
}

/**
 * Q8_0 for models up to 1B on CPUs with VNNI or AMX, Q4_K_M otherwise. Qwen2.5-0.5B's 896-wide
 * rows are no multiple of K-quants' 256-weight blocks, so its Q4_K_M falls back to wider types
 * (6.35 bits/weight) and saves little over Q8_0, whose int8 kernels those instructions speed up
 * (docs/ARCHITECTURE.md#facts-the-code-relies-on, "Quantization").
 */
function preferredQuant(candidate: ModelCandidate, facts: HostFacts): string {
  return candidate.parameterCount <= ONE_BILLION && int8Features(facts).length > 0 ? "Q8_0" : "Q4_K_M";
}

const sameQuant = (a: string, b: string): boolean => a.toUpperCase() === b.toUpperCase();

/** Why `preferredQuant` prefers what it does for this candidate, as a clause. */
function preferenceCause(candidate: ModelCandidate, facts: HostFacts): string {
  const int8 = int8Features(facts).join(" and ");
  if (facts.cpuFlags === null) return "CPU flags unknown, so VNNI/AMX cannot be assumed";
  if (int8 === "") return "the CPU has no VNNI/AMX (AVX-512 VNNI, AVX-VNNI or AMX)";
  if (candidate.parameterCount > ONE_BILLION) return `this CPU has ${int8}, but Q8_0 is preferred there only for models up to 1B`;
  return `this CPU has ${int8}, where Q8_0 runs models up to 1B faster than Q4_K_M (Qwen2.5-0.5B's Q4_K_M is really 6.35 bits/weight)`;
}

/** Why the chosen model has its quantization, as one clause without a full stop. */
function quantReason(
  chosen: ModelCandidate,
  candidates: readonly ModelCandidate[],
  pool: readonly ModelCandidate[],
  facts: HostFacts,
  needOf: (c: ModelCandidate) => number,
  budget: number,
): string {
  const quant = chosen.quant.toUpperCase();
  const isSibling = (c: ModelCandidate): boolean => c.baseModel === chosen.baseModel && c.id !== chosen.id;
  const siblings = candidates.filter(isSibling);
  if (siblings.length === 0) return `${quant}: the only quantization of ${chosen.baseModel} in the catalog`;
  const preferred = preferredQuant(chosen, facts);
  const cause = preferenceCause(chosen, facts);
  if (sameQuant(chosen.quant, preferred)) {
    const others = [...new Set(pool.filter(isSibling).map((c) => c.quant.toUpperCase()))];
    const outcome = preferred === "Q8_0" ? "and it fits" : "so the smaller Q4_K_M is kept";
    return `${others.length === 0 ? quant : `${quant} over ${others.join(" and ")}`}: ${cause}, ${outcome}`;
  }
  const better = pool.find((c) => isSibling(c) && sameQuant(c.quant, preferred));
  const missing = siblings.find((c) => sameQuant(c.quant, preferred));
  const blocker =
    better !== undefined
      ? `${better.id} needs ${formatBytes(needOf(better))}, more than the ${formatBytes(budget)} budget`
      : missing !== undefined
        ? `${missing.id} is not available`
        : `the catalog has no ${preferred} of ${chosen.baseModel}`;
  return `${quant}: ${cause}, so ${preferred} would be preferred, but ${blocker}`;
}

/** Largest first; within one base model the preferred quantization first. */
function orderCandidates(candidates: readonly ModelCandidate[], facts: HostFacts): ModelCandidate[] {
  return [...candidates].sort((a, b) => {
    if (a.parameterCount !== b.parameterCount) return b.parameterCount - a.parameterCount;
    if (a.baseModel !== b.baseModel) return a.baseModel.localeCompare(b.baseModel);
    const pa = sameQuant(a.quant, preferredQuant(a, facts)) ? 0 : 1;
    const pb = sameQuant(b.quant, preferredQuant(b, facts)) ? 0 : 1;
    return pa - pb || a.footprint.fileBytes - b.footprint.fileBytes;
  });
}

export interface ModelChoice {
  footprint: ModelFootprint;
  reason: string;
  /** false when nothing fitted and a warning already says so. */
  fits: boolean;
}

export function chooseCandidate(
  candidates: readonly ModelCandidate[],
  facts: HostFacts,
  budget: number,
  sequences: number,
  sizingContext: number | undefined,
  warnings: string[],
): ModelChoice {
  if (candidates.length === 0) {
    throw new AgentError(
      "IA_ERR_MODEL_NOT_FOUND",
      "the resource policy was given no model candidates: expected at least one catalog entry",
    );
  }
  let pool = candidates.filter((c) => c.available);
  let poolNote = `${pool.length} of ${candidates.length} catalog models are available (present or downloadable)`;
  if (pool.length === 0) {
    pool = [...candidates];
    warnings.push(`None of the ${candidates.length} catalog models is present or downloadable; the plan names one anyway.`);
    poolNote = `no catalog model is available, so all ${candidates.length} were considered`;
  }
  const noAvx2 = facts.cpuFlags !== null && !facts.cpuFlags.avx2;
  if (noAvx2) {
    const small = pool.filter((c) => c.parameterCount <= ONE_BILLION);
    if (small.length > 0) {
      pool = small;
      poolNote += `; the CPU has no AVX2${facts.cpuFlags?.avx ? "" : " (not even AVX)"}, so only models up to 1B are considered (larger ones decode at a few tokens per second at best)`;
    } else {
      warnings.push("The CPU has no AVX2 and no model up to 1B is available: expect slow generation.");
    }
  }
  const ordered = orderCandidates(pool, facts);
  const contextOf = (c: ModelCandidate): number => sizingContext ?? Math.min(CANDIDATE_MIN_CONTEXT, c.footprint.trainedContextLength);
  const needOf = (c: ModelCandidate): number => estimateMemory(c.footprint, contextOf(c), sequences).totalBytes;
  const index = ordered.findIndex((c) => needOf(c) <= budget);
  const chosen = ordered[index];
  if (chosen !== undefined) {
    const larger = ordered.slice(0, index).filter((c) => c.baseModel !== chosen.baseModel);
    const nextLarger = larger.sort((a, b) => needOf(a) - needOf(b))[0];
    const largerNote =
      nextLarger === undefined
        ? ""
        : ` Larger models do not fit (the least demanding, ${nextLarger.id}, needs ${formatBytes(needOf(nextLarger))}).`;
    return {
      footprint: chosen.footprint,
      fits: true,
      reason:
        `${chosen.id} (${formatBytes(chosen.footprint.fileBytes)}): the largest catalog model that fits the ${formatBytes(budget)} budget with a ` +
        `${n(contextOf(chosen))}-token context (needs ${formatBytes(needOf(chosen))}); ${poolNote}. ` +
        `${quantReason(chosen, candidates, pool, facts, needOf, budget)}.${largerNote}`,
    };
  }
  const smallest = [...ordered].sort((a, b) => needOf(a) - needOf(b))[0];
  if (smallest === undefined) throw new AgentError("IA_ERR_INTERNAL", "no model candidate left after ordering");
  const needBytes = needOf(smallest);
  warnings.push(
    `No catalog model fits: the smallest, ${smallest.id}, needs ${formatBytes(needBytes)} with a ${n(contextOf(smallest))}-token context but the budget is ${formatBytes(budget)} (available memory minus the reserve).`,
  );
  return {
    footprint: smallest.footprint,
    fits: false,
    reason: `${smallest.id} (${formatBytes(smallest.footprint.fileBytes)}): nothing fits the ${formatBytes(budget)} budget, so the model with the smallest need (${formatBytes(needBytes)}) is named anyway; ${poolNote}.`,
  };
}
