import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { run } from "./thirdParty.js";

/** One metric family as Prometheus' own Python client reads it (prometheus_client.parser). */
export interface ParsedFamily {
  name: string;
  type: string;
  documentation: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

// Debian's python3 (the PATH one is a pyenv build without Debian's packages).
const PYTHON = "/usr/bin/python3";

const SCRIPT = `
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.stderr.write("prometheus_client is not installed: apt-get install python3-prometheus-client\\n")
    sys.exit(3)
with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
families = [
    {"name": fam.name, "type": fam.type, "documentation": fam.documentation,
     "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in fam.samples]}
    for fam in text_string_to_metric_families(text)
]
print(json.dumps(families))
`;

/**
 * Parses a scrape with the Prometheus Python client's text parser, in a child process, from a
 * temporary file. Fails (never skips) when python3 or python3-prometheus-client is missing, and
 * when the parser refuses the text.
 */
export async function parsePrometheusText(text: string): Promise<ParsedFamily[]> {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is not installed: apt-get install python3 python3-prometheus-client`);
  const folder = mkdtempSync(path.join(tmpdir(), "ia-metrics-"));
  try {
    const file = path.join(folder, "scrape.prom");
    writeFileSync(file, text, "utf8");
    const result = await run(PYTHON, ["-c", SCRIPT, file]);
    if (result.code === 3) throw new Error(result.stderr.trim());
    if (result.code !== 0) throw new Error(`prometheus_client could not parse the scrape (exit ${result.code}): ${result.stderr}`);
    return JSON.parse(result.stdout) as ParsedFamily[];
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

/** The value of the sample `name` whose labels include `labels`, or undefined. */
export function sampleValue(families: ParsedFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue;
      if (Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) return sample.value;
    }
  }
  return undefined;
}

/** Every family GET /metrics serves and its type, as prometheus_client names them (a counter without its `_total`). */
export const AGENT_FAMILIES: Readonly<Record<string, string>> = {
  instrument_agent_answers: "counter",
  instrument_agent_errors: "counter",
  instrument_agent_prompt_tokens: "counter",
  instrument_agent_completion_tokens: "counter",
  instrument_agent_generation_tokens_per_second: "histogram",
  instrument_agent_time_to_first_token_seconds: "histogram",
  instrument_agent_queue_depth: "gauge",
  instrument_agent_engine_restarts: "counter",
  instrument_agent_scpi_queries: "counter",
  instrument_agent_tool_calls: "counter",
  instrument_agent_model_info: "gauge",
  instrument_agent_uptime_seconds: "gauge",
};

/** Family name to type, for comparing with {@link AGENT_FAMILIES}. */
export function familyTypes(families: ParsedFamily[]): Record<string, string> {
  return Object.fromEntries(families.map((family) => [family.name, family.type]));
}
