import { readdirSync } from "node:fs";
import { constants as osConstants, getPriority, setPriority } from "node:os";
import type { DeploymentShape } from "./resourcePolicy.js";

/**
 * The agent's own OS process priority. On an instrument's PC the measurement software comes
 * first, so the agent lowers itself (`--priority`, README).
 */

export type PrioritySetting = "auto" | "low" | "normal";

export interface PriorityOutcome {
  /** What the process runs at now, e.g. "below normal (nice 10)". */
  value: string;
  reason: string;
}

const LOW = osConstants.priority.PRIORITY_BELOW_NORMAL;

/**
 * On an instrument's own PC the measurement software comes first: lower this process.
 * On Linux the nice value is per thread and new threads inherit their creator's, so every
 * thread that exists now is lowered too (libuv's pool, which starts llama.cpp's threads).
 */
export function applyProcessPriority(shape: DeploymentShape, setting: PrioritySetting): PriorityOutcome {
  const wantLow = setting === "low" || (setting === "auto" && shape === "on-instrument");
  if (!wantLow) {
    return {
      value: describePriority(safeGetPriority()),
      reason: setting === "normal" ? "Left as started: --priority normal." : `Left as started: the agent runs ${shape}.`,
    };
  }
  try {
    if (safeGetPriority() < LOW) setPriority(LOW);
    if (process.platform === "linux") {
      for (const tid of readdirSync("/proc/self/task")) {
        try {
          if (getPriority(Number(tid)) < LOW) setPriority(Number(tid), LOW);
        } catch {
          // a thread that ended meanwhile
        }
      }
    }
  } catch (error) {
    return { value: describePriority(safeGetPriority()), reason: `Could not lower the priority (${(error as Error).message}).` };
  }
  const why = setting === "low" ? "--priority low" : "on the instrument's own PC (--shape on-instrument) the instrument keeps priority";
  return { value: describePriority(safeGetPriority()), reason: `Lowered: ${why}; --priority normal keeps it.` };
}

function safeGetPriority(): number {
  try {
    return getPriority();
  } catch {
    return 0;
  }
}

function describePriority(nice: number): string {
  if (process.platform === "win32") return nice >= LOW ? "below normal" : "normal";
  return nice > 0 ? `below normal (nice ${nice})` : `normal (nice ${nice})`;
}
