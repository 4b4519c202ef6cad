import { formatBytes } from "../../../common/format.js";
import { estimateMemory } from "./memoryEstimate.js";
import { count } from "./planText.js";
import type { Decision, DraftCandidate, ModelFootprint, PlanInput, SpeculationKind, SpeculationPlan } from "./planTypes.js";

/**
 * Speculative decoding (`--draft`, `--lookup`): whether a draft model or prompt lookup
 * proposes tokens for the model to check in one batch. It pays only where checking k+1
 * tokens in one batch plus drafting them costs less than the tokens kept, that is where a
 * single token is bound by memory bandwidth and the cores have compute to spare. On the 2-vCPU
 * development VM it does not (bench pairs, 1.5B-shaped Q8_0 model, 48 tokens): with a
 * 0.5B-shaped draft that proposed nothing it ran at 0.42 of plain decoding, with the draft
 * forced to propose 4 tokens that were all refuted at 0.24, with itself as the draft (a third
 * of its proposals kept) at 0.35, and prompt lookup that found nothing at 0.99; llama-bench
 * puts a batch of 2 at 1.19 single tokens there and a batch of 5 at 2.58. `auto` therefore
 * needs 4 physical cores or more, a draft much smaller than the model, and room for the
 * draft inside the memory budget.
 */

/** Fewest physical cores where a verify batch is cheap enough for speculation to pay (above). */
export const SPECULATION_MIN_CORES = 4;
/** A draft must have at most this share of the model's bytes: decoding costs about its bytes read. */
const DRAFT_MAX_SHARE = 0.5;

export interface SpeculationInput {
  input: PlanInput;
  cores: number;
  target: ModelFootprint;
  contextSize: number;
  sequences: number;
  /** Budget left after the model's own need. */
  spareBytes: number;
}

export function decideSpeculation(
  { input, cores, target, contextSize, sequences, spareBytes }: SpeculationInput,
  warnings: string[],
): Decision<SpeculationPlan> {
  const requested = input.requested.speculation ?? { draft: "off", lookup: "off", draftMax: 2 };
  const candidate = input.draftCandidate;
  const plan = (kind: SpeculationKind, draft: string | null = null): SpeculationPlan => ({ kind, draft, draftMax: requested.draftMax });
  const draftNeed = candidate ? estimateMemory(candidate.footprint, contextSize, sequences).totalBytes : 0;
  const share = candidate ? candidate.footprint.fileBytes / Math.max(1, target.fileBytes) : 0;

  if (requested.draft !== "auto" && requested.draft !== "off") {
    const label = candidate?.label ?? requested.draft;
    if (candidate && draftNeed > spareBytes) {
      warnings.push(
        `The draft ${label} needs ${formatBytes(draftNeed)} but ${formatBytes(Math.max(0, spareBytes))} of the budget is left after the model: it may push the instrument's memory out.`,
      );
    }
    if (candidate && share > DRAFT_MAX_SHARE) {
      warnings.push(
        `The draft ${label} is ${Math.round(share * 100)}% of the model's size: a draft costs about its size per token, so expect generation to be slower, not faster.`,
      );
    }
    if (requested.lookup === "on")
      warnings.push("--lookup on is ignored while --draft names a model: a sequence takes one token predictor.");
    return {
      value: plan("draft", label),
      reason: `Draft ${label}, named explicitly (--draft), proposing ${count(requested.draftMax, "token")} per check.`,
    };
  }
  if (requested.lookup === "on") {
    return {
      value: plan("lookup"),
      reason:
        "Prompt lookup, turned on explicitly (--lookup on): up to 3 tokens that followed the same tokens in the prompt are checked in one batch.",
    };
  }
  if (requested.draft === "off" && requested.lookup === "off")
    return { value: plan("off"), reason: "Off, as requested (--draft off, --lookup off)." };

  if (cores < SPECULATION_MIN_CORES) {
    return {
      value: plan("off"),
      reason:
        `Off: with ${count(cores, "physical core")} the draft's own decoding and checks of 3 to 5 tokens (1.9 to 2.6 single tokens in llama-bench) cost more than the kept tokens save ` +
        `(on the 2-vCPU development VM a 1.5B-shaped model with a 0.5B-shaped draft ran at 0.24 to 0.42 of plain decoding in bench's pairs, and prompt lookup at 0.99), ` +
        `so neither a draft nor prompt lookup pays; auto needs ${SPECULATION_MIN_CORES} or more (--draft <model> or --lookup on force them).`,
    };
  }
  if (requested.draft === "auto" && candidate) {
    const why = !candidate.present
      ? `the catalog's draft ${candidate.label} is not in the models directory${candidate.catalogId ? ` (models pull ${candidate.catalogId})` : ""}`
      : share > DRAFT_MAX_SHARE
        ? `the draft ${candidate.label} is ${Math.round(share * 100)}% of the model's size, too large to be cheaper (at most ${DRAFT_MAX_SHARE * 100}%)`
        : draftNeed > spareBytes
          ? `the draft ${candidate.label} needs ${formatBytes(draftNeed)} and ${formatBytes(Math.max(0, spareBytes))} of the budget is left after the model`
          : undefined;
    if (why === undefined) {
      return {
        value: plan("draft", candidate.label),
        reason: `Draft ${candidate.label} (${formatBytes(candidate.footprint.fileBytes)}, ${formatBytes(draftNeed)} with its context): the catalog's draft for this model, present, within the budget, on ${count(cores, "physical core")}; it proposes ${count(requested.draftMax, "token")} per check.`,
      };
    }
    if (requested.lookup === "off") return { value: plan("off"), reason: `Off: ${why}; --lookup off.` };
    return {
      value: plan("lookup"),
      reason: `Prompt lookup: no draft (${why}); with ${count(cores, "physical core")} checking 3 looked-up tokens costs little more than one.`,
    };
  }
  if (requested.lookup === "off")
    return { value: plan("off"), reason: "Off: the model has no catalog draft (--draft auto) and --lookup off." };
  return {
    value: plan("lookup"),
    reason: `Prompt lookup: ${requested.draft === "off" ? "--draft off" : "the model has no catalog draft"}; with ${count(cores, "physical core")} checking 3 looked-up tokens costs little more than one.`,
  };
}
