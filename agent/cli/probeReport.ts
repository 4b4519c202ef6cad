import type { HostFacts } from "../host/hostFacts.js";
import type { PriorityOutcome } from "../host/priority.js";
import type { ResourcePlan } from "../host/resourcePolicy.js";

/**
 * The readable form of `probe`: host facts, then each decision of the plan with its
 * reason. Generic over the plan's fields so a new decision shows up without edits here.
 */

/** What `probe --json` prints: the facts, the plan (with the process priority) and the model it is for. */
export interface ProbeReport {
  facts: HostFacts;
  plan: ResourcePlan & { priority: PriorityOutcome };
  model: Record<string, unknown>;
}

const MiB = 1024 * 1024;

function formatValue(key: string, value: unknown): string {
  if (value === null || value === undefined) return "unknown";
  if (typeof value === "number" && /bytes$/i.test(key)) return `${(value / MiB).toFixed(0)} MiB`;
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.length ? value.join(", ") : "none";
  if (typeof value === "object") {
    return Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== false && v !== null && v !== undefined)
      .map(([k, v]) => (v === true ? k : `${k}=${formatValue(k, v)}`))
      .join(" ");
  }
  return String(value);
}

function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, text]) => `  ${label.padEnd(width)}  ${text}`).join("\n");
}

export function renderFacts(facts: HostFacts): string {
  // Facts that do not apply here (windowsVersion on Linux, empty notes) are left out.
  const shown: Record<string, unknown> = { ...facts };
  // null means "no limit" when the limit was read, and "not known" otherwise.
  if (facts.memlockLimitBytes === null && facts.memlockLimitSource === "rlimit") shown.memlockLimitBytes = "unlimited";
  const rows = Object.entries(shown)
    .filter(([, value]) => value !== null && value !== undefined && !(Array.isArray(value) && value.length === 0))
    .map(([key, value]): [string, string] => [key, formatValue(key, value)]);
  return `Host\n${table(rows)}`;
}

interface Decision {
  value: unknown;
  reason: string;
}

function isDecision(value: unknown): value is Decision {
  return typeof value === "object" && value !== null && "reason" in value;
}

export function renderPlan(plan: ProbeReport["plan"]): string {
  const rows: [string, string][] = [];
  for (const [key, entry] of Object.entries(plan)) {
    if (isDecision(entry)) {
      const { reason, ...rest } = entry as unknown as Record<string, unknown> & { reason: string };
      const shown = "value" in rest ? formatValue(key, rest.value) : typeof rest.id === "string" ? rest.id : formatValue(key, rest);
      rows.push([key, `${shown}\n${" ".repeat(4)}${reason}`]);
    }
  }
  const warnings = plan.warnings;
  const lines = [`Plan\n${rows.map(([label, text]) => `  ${label}: ${text.replace(/\n/g, "\n  ")}`).join("\n")}`];
  if (warnings.length) lines.push(`Warnings\n${warnings.map((w) => `  - ${w}`).join("\n")}`);
  return lines.join("\n\n");
}
