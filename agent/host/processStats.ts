import { readFileSync } from "node:fs";

/** A `kB` field of Linux's /proc/self/status in bytes; null elsewhere or when it is missing. */
export function procStatusBytes(field: "VmHWM" | "VmLck"): number | null {
  if (process.platform !== "linux") return null;
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(readFileSync("/proc/self/status", "utf8"));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** This process's peak resident set in bytes: Linux `VmHWM`, elsewhere Node's `maxRSS`. */
export function peakRssBytes(): number {
  return procStatusBytes("VmHWM") ?? process.resourceUsage().maxRSS * 1024;
}
