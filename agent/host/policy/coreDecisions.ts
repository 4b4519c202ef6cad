import type { HostFacts } from "../hostFacts.js";
import { MiB } from "./memoryEstimate.js";
import { count, n } from "./planText.js";
import type { Decision, PlanInput } from "./planTypes.js";

/** How many cores the agent plans with, what it leaves to the instrument and the OS, and its generation threads. */

/** Decode is memory-bound: past this many threads speed rarely improves. */
const THREAD_CAP = 8;

export interface Cores {
  cores: number;
  note: string | null;
}

/** Physical cores to plan with. Unknown counts of 4+ logical CPUs are halved: oversubscribing is far worse than one idle core. */
export function planningCores(facts: HostFacts): Cores {
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

export interface Reserve {
  memMiB: number;
  cores: number;
  reason: string;
}

export function decideReserve(input: PlanInput, cores: number): Reserve {
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

export function decideThreads(input: PlanInput, cores: Cores, reserve: Reserve, warnings: string[]): Decision<number> {
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
