import { AgentError } from "../../common/errors.js";
import { MIN_GLIBC, olderThanMinGlibc } from "./glibc.js";
import type { HostFacts } from "./hostFacts.js";
import type { ModelFootprint } from "../../models/modelFootprint.js";

export type { ModelFootprint };

/**
 * The resource policy: a pure function from host facts, the deployment shape and what the
 * user asked for, to a plan (model, threads, mlock, context, parallel sequences, reserve)
 * with a reason in plain sentences for each decision. It never refuses: when nothing fits
 * it says so in `warnings` and `memory.fits`, and the caller decides.
 */

export type DeploymentShape = "on-instrument" | "beside-instrument";

/** What the policy needs to know about a model file to size its memory. */
/** A catalog model the policy may choose. Catalog entries fit this shape plus `available`. */
export interface ModelCandidate {
  id: string;
  /** Models that differ only in quantization share this, e.g. `qwen2.5-0.5b-instruct`. */
  baseModel: string;
  /** Quantization, e.g. `Q4_K_M` or `Q8_0`. */
  quant: string;
  parameterCount: number;
  footprint: ModelFootprint;
  /** The file is present or can be downloaded. */
  available: boolean;
}

export interface ResourceRequest {
  /** Generation threads. */
  threads: number | "auto";
  mlock: "on" | "off" | "auto";
  /** Context size in tokens per sequence. */
  contextSize: number | "auto";
  /** Memory left for the instrument and OS. Defaults to the shape's reserve. */
  reserveMemMiB?: number | undefined;
  /** Cores left for the instrument and OS. Defaults to the shape's reserve. */
  reserveCores?: number | undefined;
  /** Sequences generated at once. Defaults to `auto`. */
  parallelSequences?: number | "auto" | undefined;
}

export interface PlanInput {
  facts: HostFacts;
  shape: DeploymentShape;
  requested: ResourceRequest;
  /** One model to size, or catalog candidates to choose the largest that fits from. */
  model: ModelFootprint | { candidates: readonly ModelCandidate[] };
}

export interface Decision<T> {
  value: T;
  reason: string;
}

export interface ResourcePlan {
  model: { id: string; label: string; reason: string };
  threads: Decision<number>;
  mlock: Decision<boolean>;
  contextSize: Decision<number>;
  parallelSequences: Decision<number>;
  reserve: { memMiB: number; cores: number; reason: string };
  memory: {
    /** Available memory minus the reserve. */
    budgetBytes: number;
    modelBytes: number;
    kvBytes: number;
    computeOverheadBytes: number;
    /** modelBytes + kvBytes + computeOverheadBytes. */
    totalBytes: number;
    fits: boolean;
    reason: string;
  };
  warnings: string[];
  /** What the operator may want to know but need not act on (logged at info), such as `--mlock auto` running unlocked. */
  notices: string[];
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Below this a short system prompt and a question no longer fit (NOTES.md: about 240 tokens of default prompt). */
export const MIN_CONTEXT = 512;
/** The context a model must fit with to be chosen from the catalog. */
export const CANDIDATE_MIN_CONTEXT = 2048;
const ROOMY_CONTEXT = 4096;
const TIGHT_CONTEXT = 2048;
/** Hosts with less RAM than this get at most TIGHT_CONTEXT by default. */
const ROOMY_HOST_BYTES = 8 * GiB;
const CONTEXT_STEPS = [4096, 3072, 2048, 1536, 1024, 768, 512];
/** Share of the budget a default may fill; the rest is slack for estimates that run short. */
const COMFORT = 0.8;
/** Decode is memory-bound: past this many threads speed rarely improves. */
const THREAD_CAP = 8;
/** node-llama-cpp's default batch: min(context x sequences, 512). */
const DEFAULT_BATCH = 512;
const QWEN_VOCABULARY = 151_936;
/** Native libraries, graph metadata and the JS copy of the vocabulary (NOTES.md: about 190 MB over llama-bench). */
const RUNTIME_BASE_BYTES = 128 * MiB;
const ONE_BILLION = 1.05e9;

export function formatBytes(bytes: number): string {
  if (bytes !== 0 && Math.abs(bytes) < MiB) return `${Math.round(bytes / KiB).toLocaleString("en-US")} KiB`;
  return `${Math.round(bytes / MiB).toLocaleString("en-US")} MiB`;
}

const n = (value: number): string => value.toLocaleString("en-US");
/** "1 core", "2 cores". */
const count = (value: number, noun: string): string => `${n(value)} ${noun}${value === 1 ? "" : "s"}`;

interface MemoryNeed {
  modelBytes: number;
  kvBytes: number;
  computeOverheadBytes: number;
  /** The share of compute buffers that grows with the model (10% of the file). */
  modelShareBytes: number;
  scratchBytes: number;
  batch: number;
  totalBytes: number;
}

/** Model file + KV cache + compute buffers + runtime, for one context size and sequence count. */
export function estimateMemory(footprint: ModelFootprint, contextSize: number, sequences: number): MemoryNeed {
  const batch = Math.min(contextSize * sequences, DEFAULT_BATCH);
  const kvBytes = footprint.kvBytesPerToken * contextSize * sequences;
  const logits = (footprint.vocabularySize ?? QWEN_VOCABULARY) * batch * 4;
  const attention = (footprint.attentionHeadCount ?? 0) * contextSize * sequences * batch * 4;
  const scratchBytes = Math.max(logits, attention);
  const modelShareBytes = Math.round(footprint.fileBytes * 0.1);
  const computeOverheadBytes = modelShareBytes + scratchBytes + RUNTIME_BASE_BYTES;
  return {
    modelBytes: footprint.fileBytes,
    kvBytes,
    computeOverheadBytes,
    modelShareBytes,
    scratchBytes,
    batch,
    totalBytes: footprint.fileBytes + kvBytes + computeOverheadBytes,
  };
}

interface Cores {
  cores: number;
  note: string | null;
}

/** Physical cores to plan with. Unknown counts of 4+ logical CPUs are halved: oversubscribing is far worse than one idle core. */
function planningCores(facts: HostFacts): Cores {
  if (facts.physicalCoresSource !== "logical-count") return { cores: Math.max(1, facts.physicalCores), note: null };
  const logical = Math.max(1, facts.logicalCores);
  if (logical >= 4) {
    const cores = Math.floor(logical / 2);
    return {
      cores,
      note: `The physical core count is unknown, so ${cores} are assumed (half of the ${logical} logical CPUs, as with Hyper-Threading); set --threads if the CPU has none.`,
    };
  }
  return { cores: logical, note: `The physical core count is unknown, so it is taken as the ${logical} logical CPUs.` };
}

interface Reserve {
  memMiB: number;
  cores: number;
  reason: string;
}

function decideReserve(input: PlanInput, cores: number): Reserve {
  const { facts, shape, requested } = input;
  const totalMiB = Math.round(facts.totalMemBytes / MiB);
  const onInstrument = shape === "on-instrument";
  const defaultMem = onInstrument ? Math.max(2048, Math.round(totalMiB * 0.4)) : Math.max(512, Math.round(totalMiB * 0.1));
  const defaultCores = onInstrument ? Math.max(1, Math.floor(cores / 4)) : cores <= 2 ? 0 : 1;
  const memMiB = requested.reserveMemMiB ?? defaultMem;
  const reservedCores = requested.reserveCores ?? defaultCores;

  const memPart =
    requested.reserveMemMiB !== undefined
      ? `${n(memMiB)} MiB of memory as requested`
      : onInstrument
        ? `${n(memMiB)} MiB of memory (the larger of 2,048 MiB and 40% of the ${n(totalMiB)} MiB RAM) for the measurement application and the OS`
        : `${n(memMiB)} MiB of memory (the larger of 512 MiB and 10% of the ${n(totalMiB)} MiB RAM) for the OS and other tools`;
  const corePart =
    requested.reserveCores !== undefined
      ? `${count(reservedCores, "core")} as requested`
      : onInstrument
        ? `${reservedCores} of ${count(cores, "physical core")} (a quarter, at least 1) for the measurement application`
        : cores <= 2
          ? `no core of ${count(cores, "physical core")}: beside the instrument on so few cores every core is worth a generation thread`
          : `1 of ${cores} physical cores for the OS and the agent's own event loop (MQTT, serial), which keeps token times even`;
  return { memMiB, cores: reservedCores, reason: `Reserved ${memPart}, and ${corePart} (${shape}).` };
}

function decideThreads(input: PlanInput, cores: Cores, reserve: Reserve, warnings: string[]): Decision<number> {
  const room = cores.cores - reserve.cores;
  const requested = input.requested.threads;
  const coreNote = cores.note === null ? "" : ` ${cores.note}`;
  if (requested !== "auto") {
    if (requested > cores.cores) {
      warnings.push(
        `${count(requested, "thread")} requested on ${count(cores.cores, "physical core")}: more threads than cores makes decoding far slower (4 threads on a busy 2-core host: about 50 times); use at most ${Math.max(1, room)}.`,
      );
    } else if (requested > Math.max(1, room)) {
      warnings.push(
        `${count(requested, "thread")} requested, but ${count(cores.cores, "physical core")} minus ${reserve.cores} reserved leaves ${Math.max(0, room)}: generation will compete with what the reserve protects.`,
      );
    }
    return {
      value: requested,
      reason: `${count(requested, "thread")} as requested; the host has ${count(cores.cores, "physical core")}.${coreNote}`,
    };
  }
  const value = Math.min(THREAD_CAP, Math.max(1, room));
  let why = `${count(cores.cores, "physical core")} minus ${reserve.cores} reserved = ${room}`;
  if (room < 1) {
    why += `, raised to 1 (the agent shares a core with what the reserve protects)`;
    warnings.push(
      `Only ${count(cores.cores, "physical core")} and ${reserve.cores} reserved: the one generation thread shares a core with the instrument.`,
    );
  } else if (room > THREAD_CAP) {
    why += `, capped at ${THREAD_CAP} because decoding is memory-bound and more threads rarely help`;
  }
  return {
    value,
    reason: `${count(value, "thread")}: ${why}; never more than the physical cores (4 threads on a busy 2-core host decoded about 50 times slower).${coreNote}`,
  };
}

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
 * (NOTES.md, "Speed measured here").
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
  return `this CPU has ${int8}, where Q8_0 runs models up to 1B faster than Q4_K_M (Qwen2.5-0.5B's Q4_K_M is really 6.35 bits/weight, NOTES.md)`;
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

interface ModelChoice {
  footprint: ModelFootprint;
  reason: string;
  /** false when nothing fitted and a warning already says so. */
  fits: boolean;
}

function chooseCandidate(
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

function decideContext(
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

function decideParallel(input: PlanInput, cores: number, footprint: ModelFootprint, contextSize: number, budget: number): Decision<number> {
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

/**
 * Whether the kernel will let this process lock `lockBytes`, as far as can be known before
 * loading. Linux applies RLIMIT_MEMLOCK only to processes without CAP_IPC_LOCK (in the initial
 * user namespace; hostProbe counts a capability held only inside a container's namespace as
 * absent). Measured on the 2-core dev VM as root (CAP_IPC_LOCK, no CAP_SYS_RESOURCE, 8 MiB
 * limit): a plain 2 GiB mlock succeeded; with CAP_IPC_LOCK dropped and a 64 KiB limit
 * llama.cpp's lock failed and nothing was locked (VmLck 0).
 *
 * What cannot be known before loading is where llama.cpp's buffer lands. It locks from the
 * buffer's start, which is not page-aligned, for the buffer's size rounded up to whole pages,
 * so the range ends up to one page past the buffer; when that page is PROT_NONE (the unused
 * rest of a malloc arena, a thread stack's guard page) or unmapped, mlock() returns ENOMEM.
 * On the dev VM that happened in about half the loads of the tiny model, with or without
 * CAP_IPC_LOCK. llamaRuntime.ts judges the result after loading from what the kernel reports.
 */
function memlockPermission(facts: HostFacts, lockBytes: number): { allowed: boolean; why: string } {
  if (facts.platform === "win32" || facts.memlockLimitSource === "not-applicable") {
    return { allowed: true, why: "Windows has no memlock limit (llama.cpp uses VirtualLock and raises the working set)" };
  }
  if (facts.memlockLimitSource === "rlimit" && facts.memlockLimitBytes === null)
    return { allowed: true, why: "the memlock limit (RLIMIT_MEMLOCK) is unlimited" };
  if (facts.memlockLimitSource === "rlimit" && facts.memlockLimitBytes !== null && facts.memlockLimitBytes >= lockBytes) {
    return {
      allowed: true,
      why: `the memlock limit of ${formatBytes(facts.memlockLimitBytes)} covers the ${formatBytes(lockBytes)} model`,
    };
  }
  const limit =
    facts.memlockLimitSource === "rlimit" && facts.memlockLimitBytes !== null
      ? `the memlock limit (RLIMIT_MEMLOCK) is ${formatBytes(facts.memlockLimitBytes)}`
      : "the memlock limit could not be read";
  if (facts.hasCapIpcLock === true) {
    return {
      allowed: true,
      why: `${limit}, but the process has CAP_IPC_LOCK, which lifts the limit for the ${formatBytes(lockBytes)} model`,
    };
  }
  return {
    allowed: false,
    why:
      `${limit} but the model needs ${formatBytes(lockBytes)} locked, and the process lacks CAP_IPC_LOCK; ` +
      "fix: LimitMEMLOCK=infinity in the systemd unit, or `ulimit -l unlimited` (a memlock line in /etc/security/limits.conf) before starting",
  };
}

function decideMlock(
  input: PlanInput,
  footprint: ModelFootprint,
  need: MemoryNeed,
  budget: number,
  warnings: string[],
  notices: string[],
): Decision<boolean> {
  const { facts } = input;
  const margin = Math.max(256 * MiB, Math.round(facts.totalMemBytes * 0.1));
  const fits = need.totalBytes + margin <= budget;
  const fitWhy = fits
    ? `the ${formatBytes(need.totalBytes)} need leaves at least ${formatBytes(margin)} of the ${formatBytes(budget)} budget free`
    : `the ${formatBytes(need.totalBytes)} need does not leave ${formatBytes(margin)} free in the ${formatBytes(budget)} budget, and locked pages cannot be reclaimed under pressure`;
  const permission = memlockPermission(facts, need.modelBytes);
  switch (input.requested.mlock) {
    case "off":
      return { value: false, reason: "Off as requested: the model stays mapped and the OS may page it out under pressure." };
    case "on":
      if (!permission.allowed)
        warnings.push(
          `mlock was requested but will probably fail: ${permission.why}. The model then loads unlocked (llama.cpp only warns).`,
        );
      if (!fits) warnings.push(`mlock was requested but ${fitWhy}.`);
      return { value: true, reason: `On as requested; ${permission.allowed ? permission.why : "it will probably not take effect"}.` };
    case "auto":
      // `auto` locks only when it will work and otherwise runs unlocked, said once at info:
      // here when the limit rules it out before loading, or by the runtime when a planned lock
      // did not take. It never fails a check or stops the agent.
      if (footprint.demo)
        return {
          value: false,
          reason: "Off: the demo model is a small random-weight file for trying the plumbing, nothing worth pinning in RAM.",
        };
      if (!fits) return { value: false, reason: `Off: ${fitWhy}.` };
      if (!permission.allowed) {
        notices.push(`mlock auto: the model runs unlocked and may be paged out, because ${permission.why}.`);
        return { value: false, reason: `Off: ${permission.why}.` };
      }
      return { value: true, reason: `On: ${fitWhy}, and ${permission.why}.` };
  }
}

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

  return {
    model: { id: footprint.id, label: footprint.label, reason: choice.reason },
    threads,
    mlock,
    contextSize,
    parallelSequences,
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
