import { formatBytes } from "../../common/format.js";
import { MIN_GLIBC, olderThanMinGlibc } from "./glibc.js";
import type { HostFacts } from "./hostFacts.js";
import { decideContext, decideParallel } from "./policy/contextDecisions.js";
import { decideReserve, decideThreads, planningCores } from "./policy/coreDecisions.js";
import { estimateMemory, MiB, RUNTIME_BASE_BYTES } from "./policy/memoryEstimate.js";
import { decideMlock } from "./policy/mlockDecision.js";
import { chooseCandidate } from "./policy/modelChoice.js";
import type { ModelChoice } from "./policy/modelChoice.js";
import { count, n } from "./policy/planText.js";
import type { PlanInput, ResourcePlan } from "./policy/planTypes.js";
import { decideSpeculation } from "./policy/speculationDecision.js";

export type { DraftCandidate, SpeculationPlan } from "./policy/planTypes.js";
export type {
  Decision,
  DeploymentShape,
  ModelCandidate,
  ModelFootprint,
  PlanInput,
  ResourcePlan,
  ResourceRequest,
} from "./policy/planTypes.js";

/**
 * The resource policy: a pure function from host facts, the deployment shape and what the
 * user asked for, to a plan (model, threads, mlock, context, parallel sequences, speculation, reserve)
 * with a reason in plain sentences for each decision. It never refuses: when nothing fits
 * it says so in `warnings` and `memory.fits`, and the caller decides.
 */

function hostWarnings(facts: HostFacts, cores: number): string[] {
  const warnings: string[] = [];
  if (facts.platform === "linux" && facts.glibcVersion !== null && olderThanMinGlibc(facts.glibcVersion)) {
    warnings.push(
      `glibc ${facts.glibcVersion} is older than ${MIN_GLIBC.join(".")}: node-llama-cpp's prebuilt binaries will not load; build llama.cpp locally from the bundled source.`,
    );
  }
  const load = facts.loadAverage?.[0];
  if (load !== undefined && load > cores) {
    warnings.push(
      `The host is busy: load average ${load.toFixed(2)} on ${count(cores, "physical core")}; generation will be slower than benchmarks.`,
    );
  }
  return warnings;
}

/** The plan for this host. Pure: same input, same plan. */
export function planResources(input: PlanInput): ResourcePlan {
  const { facts } = input;
  const cores = planningCores(facts);
  const warnings = hostWarnings(facts, cores.cores);
  const reserve = decideReserve(input, cores.cores);
  const budget = Math.max(0, facts.availableMemBytes - reserve.memMiB * MiB);
  const requestedParallel = input.requested.parallelSequences;
  const sizingSequences = typeof requestedParallel === "number" ? requestedParallel : 1;
  const sizingContext = typeof input.requested.contextSize === "number" ? input.requested.contextSize : undefined;

  const choice: ModelChoice =
    "candidates" in input.model
      ? chooseCandidate(input.model.candidates, facts, budget, sizingSequences, sizingContext, warnings)
      : {
          footprint: input.model,
          fits: true,
          reason: `${input.model.id} (${formatBytes(input.model.fileBytes)}): the model was named explicitly.`,
        };
  const footprint = choice.footprint;

  const contextSize = decideContext(input, footprint, budget, sizingSequences, warnings);
  const parallelSequences = decideParallel(input, cores.cores, footprint, contextSize.value, budget);
  const need = estimateMemory(footprint, contextSize.value, parallelSequences.value);
  const fits = need.totalBytes <= budget;
  if (!fits && choice.fits) {
    warnings.push(
      `${footprint.id} does not fit: it needs ${formatBytes(need.totalBytes)} (model ${formatBytes(need.modelBytes)}, KV cache ${formatBytes(need.kvBytes)}, compute ${formatBytes(need.computeOverheadBytes)}) but the budget is ${formatBytes(budget)} (${formatBytes(facts.availableMemBytes)} available minus the ${n(reserve.memMiB)} MiB reserve).`,
    );
  }
  const threads = decideThreads(input, cores, reserve, warnings);
  const notices: string[] = [];
  const mlock = decideMlock(input, footprint, need, budget, warnings, notices);
  const speculation = decideSpeculation(
    {
      input,
      cores: cores.cores,
      target: footprint,
      contextSize: contextSize.value,
      sequences: parallelSequences.value,
      spareBytes: budget - need.totalBytes,
    },
    warnings,
  );

  return {
    model: { id: footprint.id, label: footprint.label, reason: choice.reason },
    threads,
    mlock,
    contextSize,
    parallelSequences,
    speculation,
    reserve,
    memory: {
      budgetBytes: budget,
      modelBytes: need.modelBytes,
      kvBytes: need.kvBytes,
      computeOverheadBytes: need.computeOverheadBytes,
      totalBytes: need.totalBytes,
      fits,
      reason:
        `Needs ${formatBytes(need.totalBytes)}: model ${formatBytes(need.modelBytes)} + KV cache ${formatBytes(need.kvBytes)} ` +
        `(${n(footprint.kvBytesPerToken)} bytes/token x ${n(contextSize.value)} tokens x ${count(parallelSequences.value, "sequence")}) + compute ${formatBytes(need.computeOverheadBytes)} ` +
        `(${formatBytes(need.modelShareBytes)} = 10% of the model, ${formatBytes(need.scratchBytes)} scratch for a ${need.batch}-token batch, ${formatBytes(RUNTIME_BASE_BYTES)} runtime); ` +
        `budget ${formatBytes(budget)} = ${formatBytes(facts.availableMemBytes)} available minus the ${n(reserve.memMiB)} MiB reserve; ${fits ? "it fits" : "it does NOT fit"}.`,
    },
    warnings,
    notices,
  };
}
