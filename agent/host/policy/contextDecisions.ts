import { formatBytes } from "../../../common/format.js";
import { estimateMemory, GiB } from "./memoryEstimate.js";
import { CANDIDATE_MIN_CONTEXT } from "./modelChoice.js";
import { count, n } from "./planText.js";
import type { Decision, ModelFootprint, PlanInput } from "./planTypes.js";

/** The context size and the number of sequences generated at once. */

/** Below this a short system prompt and a question no longer fit (about 240 tokens of default prompt: docs/ARCHITECTURE.md#facts-the-code-relies-on). */
export const MIN_CONTEXT = 512;
const ROOMY_CONTEXT = 4096;
const TIGHT_CONTEXT = 2048;
/** Hosts with less RAM than this get at most TIGHT_CONTEXT by default. */
const ROOMY_HOST_BYTES = 8 * GiB;
const CONTEXT_STEPS = [4096, 3072, 2048, 1536, 1024, 768, 512];
/** Share of the budget a default may fill; the rest is slack for estimates that run short. */
export const COMFORT = 0.8;

export function decideContext(
  input: PlanInput,
  footprint: ModelFootprint,
  budget: number,
  sequences: number,
  warnings: string[],
): Decision<number> {
  const trained = footprint.trainedContextLength;
  const requested = input.requested.contextSize;
  if (requested !== "auto") {
    if (requested > trained)
      warnings.push(
        `Context ${n(requested)} exceeds the ${n(trained)} tokens ${footprint.id} was trained on: answers may degrade past that.`,
      );
    if (requested < MIN_CONTEXT)
      warnings.push(`Context ${n(requested)} is below ${MIN_CONTEXT} tokens: a system prompt and a question may not fit.`);
    return { value: requested, reason: `${n(requested)} tokens as requested (${footprint.id} was trained on ${n(trained)}).` };
  }
  const roomy = input.facts.totalMemBytes >= ROOMY_HOST_BYTES;
  const target = Math.min(trained, roomy ? ROOMY_CONTEXT : TIGHT_CONTEXT);
  const steps = CONTEXT_STEPS.filter((s) => s <= target);
  if (steps.length === 0) steps.push(Math.max(trained, 1));
  const targetWhy = roomy
    ? `the default is ${n(target)} tokens on a host with 8 GiB or more (trained: ${n(trained)})`
    : `the default is ${n(target)} tokens on a host with less than 8 GiB RAM (trained: ${n(trained)})`;
  const total = (s: number): number => estimateMemory(footprint, s, sequences).totalBytes;
  const floor = Math.min(CANDIDATE_MIN_CONTEXT, target);
  const comfortable = steps.find((s) => s >= floor && total(s) <= budget * COMFORT);
  if (comfortable !== undefined) {
    const shrunk = comfortable < target ? `, shrunk from ${n(target)} so the need stays within 80% of the budget` : "";
    return {
      value: comfortable,
      reason: `${n(comfortable)} tokens: ${targetWhy}${shrunk}; needs ${formatBytes(total(comfortable))} of the ${formatBytes(budget)} budget.`,
    };
  }
  const fitting = steps.find((s) => total(s) <= budget);
  if (fitting !== undefined) {
    const how = fitting < target ? "shrunk to the largest size that fits" : "it fits, though above 80% of the budget";
    return {
      value: fitting,
      reason: `${n(fitting)} tokens: ${targetWhy}, ${how} (${formatBytes(total(fitting))} of the ${formatBytes(budget)} budget).`,
    };
  }
  const smallest = steps.at(-1) ?? MIN_CONTEXT;
  return {
    value: smallest,
    reason: `${n(smallest)} tokens, the minimum: ${targetWhy}, but even ${n(smallest)} tokens need ${formatBytes(total(smallest))} against a ${formatBytes(budget)} budget.`,
  };
}

export function decideParallel(
  input: PlanInput,
  cores: number,
  footprint: ModelFootprint,
  contextSize: number,
  budget: number,
): Decision<number> {
  const requested = input.requested.parallelSequences ?? "auto";
  if (requested !== "auto") return { value: requested, reason: `${count(requested, "sequence")} as requested.` };
  if (cores <= 2) {
    return { value: 1, reason: `1 sequence: with ${count(cores, "physical core")} one answer at a time is faster than two sharing them.` };
  }
  const most = cores >= 8 ? 4 : 2;
  for (let p = most; p >= 2; p--) {
    const need = estimateMemory(footprint, contextSize, p).totalBytes;
    if (need <= budget * COMFORT) {
      return {
        value: p,
        reason: `${p} sequences: ${cores} physical cores can serve ${p} questions at once, and ${p} x ${n(contextSize)} tokens need ${formatBytes(need)} of the ${formatBytes(budget)} budget.`,
      };
    }
  }
  const need2 = estimateMemory(footprint, contextSize, 2).totalBytes;
  return {
    value: 1,
    reason: `1 sequence: a second one at ${n(contextSize)} tokens would need ${formatBytes(need2)}, more than 80% of the ${formatBytes(budget)} budget.`,
  };
}
