import { readFileSync } from "node:fs";
import type { MlockState } from "./modelRuntime.js";
import { procStatusBytes } from "../host/processStats.js";

/** Messages from llama.cpp that the agent must act on, not only log. */
export const MLOCK_FAILURE = /failed to mlock/i;

/**
 * Memory the kernel has locked for this process, on Linux: the resident pages of locked
 * mappings (`Locked` in /proc/self/smaps_rollup), else `VmLck` (sizes of locked mappings,
 * which also counts a locked PROT_NONE page). null elsewhere.
 */
function readLockedBytes(): number | null {
  if (process.platform !== "linux") return null;
  try {
    const match = /^Locked:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // Kernels before 4.14 have no smaps_rollup.
  }
  return procStatusBytes("VmLck");
}

/** How to let this process lock the weights, for the messages of a lock that did not take. */
export function mlockFix(): string {
  return process.platform === "win32"
    ? "run the agent as a user allowed to lock pages in memory, or set mlock off"
    : "raise the memlock limit: LimitMEMLOCK=infinity in the systemd unit, or `ulimit -l unlimited` before starting";
}

/**
 * Whether the weights really are locked. llama.cpp reports a failed mlock only as a log line,
 * and that line is not the whole truth: it locks from a buffer's unaligned start for the size
 * rounded up to pages, so the range can end one page into PROT_NONE memory (a malloc arena's
 * reserve, a thread stack guard) and mlock() returns ENOMEM, yet the kernel has already
 * locked and faulted in every page of the buffer itself (measured on the dev VM: ENOMEM in
 * strace, "failed to mlock" from llama.cpp, and 1,100 kB `Locked` in smaps for the 1,100 kB
 * buffer). So on Linux the kernel's count decides; the line only explains. Elsewhere, and
 * when layers sit in VRAM (not counted there), the line decides.
 */
export function mlockState(requested: boolean, warnings: string[], weightBytes: number, offloaded: boolean): MlockState {
  const lockedBytes = readLockedBytes();
  if (!requested) return { requested, locked: false, lockedBytes, detail: "mlock off as planned" };
  const failure = warnings
    .find((w) => MLOCK_FAILURE.test(w))
    ?.split("\n")[0]
    ?.replace(/^warning:\s*/, "");
  const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20).toLocaleString("en-US")} MiB`;
  // Node itself locks nothing, but the count is per process: the weights count as locked when
  // it covers nearly all of them (llama.cpp's buffers round up, never down).
  const kernelSaysLocked = lockedBytes === null || offloaded ? failure === undefined : lockedBytes >= weightBytes * 0.9;
  if (kernelSaysLocked) {
    const held = lockedBytes ? ` (${mib(lockedBytes)} locked)` : "";
    const note =
      failure === undefined
        ? ""
        : `; llama.cpp still logged "${failure}": mlock() failed for part of its range, typically the page past the end of its buffer that it rounds the lock up to, after the kernel had locked the buffer`;
    return { requested, locked: true, lockedBytes, detail: `model pinned in RAM${held}${note}` };
  }
  const why = failure ?? `the kernel has ${mib(lockedBytes ?? 0)} locked for ${mib(weightBytes)} of weights`;
  return {
    requested,
    locked: false,
    lockedBytes,
    detail: `mlock was planned but did not take effect (${why}); the model runs unlocked and may be paged out. Fix: ${mlockFix()}`,
  };
}
