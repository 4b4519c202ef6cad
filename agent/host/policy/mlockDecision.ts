import { formatBytes } from "../../../common/format.js";
import type { HostFacts } from "../hostFacts.js";
import { MiB } from "./memoryEstimate.js";
import type { MemoryNeed } from "./memoryEstimate.js";
import type { Decision, ModelFootprint, PlanInput } from "./planTypes.js";

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
 * CAP_IPC_LOCK. The engine judges the result after loading from what the kernel reports (engine/mlockState.ts).
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

export function decideMlock(
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
