import { existsSync } from "node:fs";
import path from "node:path";
import { listCatalog } from "../../models/catalog.js";
import { validateModelFile } from "../../models/gguf/ggufValidator.js";
import type { ModelFileSummary } from "../../models/gguf/ggufValidator.js";
import { resolveModel } from "../../models/modelResolver.js";
import type { ResolvedModel } from "../../models/modelResolver.js";
import type { AgentConfig } from "../config/config.js";
import { withAbortDeadline } from "../../common/async.js";
import { toAgentError } from "../../common/errors.js";
import type { HostFacts } from "../host/hostFacts.js";
import type { Logger } from "../../common/logger.js";
import type { ModelRuntime } from "../engine/modelRuntime.js";
import type { LlamaRuntimeOptions } from "../engine/llamaRuntime.js";
import { planForCatalog, planForFile, runtimeOptions } from "../service/loadAgent.js";
import { chooseEngine, findEngineInstall } from "../engine/preflight.js";
import type { ResourcePlan } from "../host/resourcePolicy.js";
import { selfCommand } from "../cli/selfCommand.js";

/**
 * `smoke` (README, "Deploy"; the report's fields are its contract): one headless pass over everything this host needs, each
 * step a check with a verdict, a duration and a detail a technician can act on. A failing
 * step never ends the run; steps that depend on it fail with the reason instead.
 */

export interface SmokeCheck {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

export interface SmokeReport {
  ok: boolean;
  checks: SmokeCheck[];
  host: HostFacts | null;
  plan: ResourcePlan | null;
  model: (ModelFileSummary & { label: string; path: string; demo: boolean }) | null;
  tokensPerSecond: number | null;
  ttftMs: number | null;
}

/** The outside world each check touches, injectable so tests can hand in fakes. */
export interface SmokeProbes {
  probeHost(): Promise<HostFacts>;
  loadRuntime(engine: AgentConfig["engine"], options: LlamaRuntimeOptions): Promise<ModelRuntime>;
  /** Resolves with a detail once a message went to the broker and came back. */
  mqttRoundTrip(url: string, config: AgentConfig, timeoutMs: number): Promise<string>;
  /** Resolves with a detail once the port opened (and closed again). */
  serialOpens(portPath: string, baud: number): Promise<string>;
  /** Resolves with the instrument's `*IDN?` reply, audited as origin `smoke` in `auditFile` when given. */
  instrumentIdn(uri: string, timeoutMs: number, auditFile?: string): Promise<string>;
}

export interface SmokeOptions {
  config: AgentConfig;
  logger: Logger;
  /** Tokens to generate. Defaults to 16. */
  tokens?: number;
  /** Lowest acceptable generation speed, tokens/s. Defaults to 1. */
  floorTokensPerSecond?: number;
  /** Longest wait for each MQTT, serial or instrument check. Defaults to 5000 ms. */
  timeoutMs?: number;
  probes: SmokeProbes;
}

/** The speed as the field notes record it: "5.55 tokens/s". */
export function formatSpeed(tokensPerSecond: number): string {
  return `${tokensPerSecond.toFixed(2)} tokens/s`;
}

class Checks {
  readonly list: SmokeCheck[] = [];

  /** Runs one step; a throw is a failed check with the error's code and message. */
  async run<T>(name: string, step: () => Promise<{ value: T; detail: string; ok?: boolean }>): Promise<T | undefined> {
    const started = performance.now();
    try {
      const { value, detail, ok = true } = await step();
      this.list.push({ name, ok, ms: elapsed(started), detail });
      return ok ? value : undefined;
    } catch (error) {
      const agentError = toAgentError(error);
      this.list.push({ name, ok: false, ms: elapsed(started), detail: `${agentError.code}: ${agentError.message}` });
      return undefined;
    }
  }

  blocked(name: string, because: string): void {
    this.list.push({ name, ok: false, ms: 0, detail: `not run: ${because}` });
  }
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

function describeHost(facts: HostFacts, engine: string): string {
  const GiB = 2 ** 30;
  const os = facts.distro ?? (facts.windowsVersion ? `Windows ${facts.windowsVersion}` : `${facts.platform} ${facts.osRelease}`);
  const libc = facts.glibcVersion ? `, glibc ${facts.glibcVersion}` : "";
  const flags = facts.cpuFlags
    ? Object.entries(facts.cpuFlags)
        .filter(([, on]) => on)
        .map(([flag]) => flag)
        .join(" ") || "none of sse4.2/avx"
    : "unknown";
  return (
    `${os} ${facts.arch}${libc}; ${facts.cpuModel}, ${facts.physicalCores} cores/${facts.logicalCores} threads, CPU features: ${flags}; ` +
    `${(facts.totalMemBytes / GiB).toFixed(1)} GiB RAM, ${(facts.availableMemBytes / GiB).toFixed(1)} GiB available; engine: ${engine}`
  );
}

async function resolveSmokeModel(config: AgentConfig, facts: HostFacts | null, logger: Logger): Promise<ResolvedModel> {
  const resolveOptions = { modelsDir: config.modelsDir, mirror: config.modelMirror, logger };
  if (config.model) return resolveModel(config.model, resolveOptions);
  if (facts) {
    const planned = listCatalog().find((e) => e.id === planForCatalog(facts, config, true).model.id);
    if (planned && existsSync(path.resolve(config.modelsDir, planned.fileName))) return resolveModel(planned.id, resolveOptions);
  }
  throw new Error(
    `no model given and none present in ${path.resolve(config.modelsDir)}: pass --model <file> (or --model demo), or fetch one with \`${selfCommand()} models pull <id>\``,
  );
}

export async function runSmoke(options: SmokeOptions): Promise<SmokeReport> {
  const { config, logger, probes } = options;
  const tokens = options.tokens ?? 16;
  const floor = options.floorTokensPerSecond ?? 1;
  const timeoutMs = options.timeoutMs ?? 5000;
  const checks = new Checks();
  const report: SmokeReport = { ok: false, checks: checks.list, host: null, plan: null, model: null, tokensPerSecond: null, ttftMs: null };

  const facts = await checks.run("host probe", async () => {
    const found = await probes.probeHost();
    report.host = found;
    const engine = chooseEngine(found, findEngineInstall());
    return {
      value: found,
      detail: describeHost(found, engine.kind === "localBuild" ? `local build ${engine.folder}` : "prebuilt binaries"),
    };
  });

  const prepared = await checks.run("model file valid", async () => {
    const model = await resolveSmokeModel(config, report.host, logger);
    const summary = await validateModelFile(model.path);
    report.model = { ...summary, label: model.label, path: model.path, demo: model.isDemo };
    const detail = `${model.path}: ${summary.architecture} ${summary.fileType}, ${(summary.fileBytes / 1e6).toFixed(1)} MB${model.isDemo ? " (demo model: scripted, no knowledge)" : ""}`;
    return { value: { model, summary }, detail };
  });

  let runtime: ModelRuntime | undefined;
  if (!facts || !prepared) {
    checks.blocked("model loads", !facts ? "the host probe failed" : "no valid model file");
  } else {
    const plan = planForFile(facts, config, prepared.model, prepared.summary);
    report.plan = plan;
    runtime = await checks.run("model loads", async () => {
      const loaded = await probes.loadRuntime(config.engine, {
        ...runtimeOptions(config, prepared.model, plan, logger),
        parallelSequences: 1,
      });
      const info = loaded.info;
      return {
        value: loaded,
        detail: `loaded in ${info.loadMs} ms: ${info.threads} threads, context ${info.contextSize} tokens, ${info.backend}, engine ${info.engine}`,
      };
    });
  }

  try {
    await modelChecks(checks, report, runtime, { tokens, floor, config });
  } finally {
    await runtime?.dispose().catch(() => undefined);
  }
  await transportChecks(checks, config, probes, timeoutMs);
  report.ok = checks.list.every((c) => c.ok);
  return report;
}

async function modelChecks(
  checks: Checks,
  report: SmokeReport,
  runtime: ModelRuntime | undefined,
  { tokens, floor, config }: { tokens: number; floor: number; config: AgentConfig },
): Promise<void> {
  const generateName = `generates ${tokens} tokens`;
  const speedName = `tokens/s above ${floor}`;
  if (!runtime) {
    for (const name of [generateName, speedName, "mlock as planned"]) checks.blocked(name, "the model did not load");
    return;
  }
  const result = await checks.run(generateName, async () => {
    const answer = await runtime.generate(0, {
      mode: "chat",
      messages: [{ role: "user", content: "Name one quantity a spectrum analyzer measures." }],
      system: config.system,
      params: { maxTokens: tokens, temperature: 0, seed: 1 },
    });
    const n = answer.usage.completionTokens;
    const why = answer.finishReason === "length" ? "" : ` (the model ended its answer after ${n})`;
    return {
      value: answer,
      ok: n > 0,
      detail: `${n} tokens in ${Math.round(answer.timings.totalMs)} ms${why}: ${JSON.stringify(answer.text.slice(0, 60))}`,
    };
  });
  if (!result) {
    checks.blocked(speedName, "generation failed");
  } else {
    report.tokensPerSecond = result.timings.tokensPerSecond;
    report.ttftMs = result.timings.ttftMs;
    await checks.run(speedName, async () => {
      const tps = result.timings.tokensPerSecond;
      if (result.usage.completionTokens < 2) return { value: tps, ok: false, detail: "too few tokens to measure a speed" };
      const ok = tps >= floor;
      return {
        value: tps,
        ok,
        detail: `${formatSpeed(tps)} (floor ${formatSpeed(floor)}), first token after ${Math.round(result.timings.ttftMs)} ms`,
      };
    });
  }
  await checks.run("mlock as planned", async () => {
    const { mlock } = runtime.info;
    const why = report.plan?.mlock.reason;
    if (!mlock.requested) return { value: mlock, detail: `off as planned${why ? ` (${why.replace(/\.$/, "")})` : ""}` };
    if (mlock.locked) return { value: mlock, detail: mlock.detail };
    // Only `--mlock on` demands the lock. `auto` locks when it can and otherwise runs unlocked,
    // which the engine has logged once with the fix: a host without it is still fit.
    if (config.mlock !== "on") return { value: mlock, detail: `auto: running unlocked, which is allowed (${mlock.detail})` };
    return { value: mlock, ok: false, detail: mlock.detail };
  });
}

async function transportChecks(checks: Checks, config: AgentConfig, probes: SmokeProbes, timeoutMs: number): Promise<void> {
  if (config.mqtt !== "off") {
    await checks.run("MQTT round trip", async () => ({ value: true, detail: await probes.mqttRoundTrip(config.mqtt, config, timeoutMs) }));
  }
  if (config.serial !== "off") {
    await checks.run("serial port opens", async () => ({ value: true, detail: await probes.serialOpens(config.serial, config.baud) }));
  }
  if (config.instrument !== "off") {
    await checks.run("instrument *IDN?", async () => ({
      value: true,
      detail: await probes.instrumentIdn(config.instrument, timeoutMs, config.scpiAudit),
    }));
  }
}

/** The human form: one line per check, then the speed and the verdict. */
export function renderSmoke(report: SmokeReport): string {
  const nameWidth = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.map(
    (c) => `${c.ok ? "ok  " : "FAIL"}  ${c.name.padEnd(nameWidth)}  ${String(c.ms).padStart(6)} ms  ${c.detail}`,
  );
  if (report.tokensPerSecond !== null) {
    lines.push("", `speed: ${formatSpeed(report.tokensPerSecond)}, first token after ${Math.round(report.ttftMs ?? 0)} ms`);
  }
  const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
  const passed = report.checks.length - failed.length;
  lines.push(
    report.ok
      ? `smoke: all ${report.checks.length} checks passed`
      : `smoke: FAILED ${failed.length} of ${report.checks.length} checks (${failed.join(", ")}); ${passed} passed`,
  );
  return `${lines.join("\n")}\n`;
}

/** The real probes: the host probe, llama.cpp, the broker, the serial port, the instrument. */
export function realSmokeProbes(): SmokeProbes {
  return {
    probeHost: async () => (await import("../host/hostProbe.js")).probeHost(),
    loadRuntime: async (engine, options) => (await import("../engine/process/engineProcess.js")).startEngine(options, engine),
    mqttRoundTrip: (url, config, timeoutMs) => withAbortDeadline(`MQTT ${url}`, timeoutMs, (signal) => mqttEcho(url, config, signal)),
    serialOpens: async (portPath, baud) => {
      const { SerialPortLink } = await import("../../common/serial/serialPortLink.js");
      const link = new SerialPortLink({ path: portPath, baudRate: baud });
      await link.open({});
      await link.close();
      return `${portPath} opened at ${baud} baud, 8N1, and closed`;
    },
    instrumentIdn: async (uri, timeoutMs, auditFile) => {
      const { InstrumentBridge } = await import("../../firmware-bridge/instrumentBridge.js");
      const bridge = new InstrumentBridge({ uri, timeoutMs, auditFile });
      try {
        return await withAbortDeadline(`instrument ${uri}`, timeoutMs + 1000, () => bridge.query("*IDN?", "smoke"));
      } finally {
        await bridge.close().catch(() => undefined);
      }
    },
  };
}

/** A message published and received back through the configured broker, with this agent's login. */
async function mqttEcho(url: string, config: AgentConfig, signal: AbortSignal): Promise<string> {
  if (url === "embedded") return "embedded broker: runs inside `run`, nothing to reach from here";
  const [{ brokerRoundTrip, displayUrl }, { agentIdFrom, brokerOptionsFrom }, { agentTopics }] = await Promise.all([
    import("../transports/mqtt/brokerClient.js"),
    import("../transports/mqtt/mqttSettings.js"),
    import("../transports/mqtt/topics.js"),
  ]);
  const topic = agentTopics(config.mqttPrefix, agentIdFrom(config)).smoke(`${process.pid}-${Date.now()}`);
  const ms = await brokerRoundTrip(brokerOptionsFrom(config, url), `iagent-smoke-${process.pid}`, topic, signal);
  return `${displayUrl(url)}: published and received on ${topic} in ${ms} ms`;
}
