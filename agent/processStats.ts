import { readFileSync } from "node:fs";

/** This process's peak resident set in bytes: Linux `VmHWM`, elsewhere Node's `maxRSS`. */
export function peakRssBytes(): number {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // not Linux: resourceUsage below
  }
  return process.resourceUsage().maxRSS * 1024;
}
