import { appendFileSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { CommandHandlers } from "./program.js";
import { loadConfig } from "../config/config.js";
import type { AgentConfig } from "../config/config.js";
import { AgentError, EXIT_CHECK_FAILED, EXIT_OK, EXIT_RUNTIME, toAgentError } from "../../common/errors.js";
import { runTransports } from "../service/agentRunner.js";
import { DEMO_NOTICE } from "../console/consoleText.js";
import { createLocalConsole, transportFactories } from "../transports/registry.js";
import { createLogger, TerminalLogGate } from "../../common/logger.js";
import type { Logger } from "../../common/logger.js";
import { createInstrument, loadAgent, planForCatalog, prepareModel } from "../service/loadAgent.js";
import { createAllowlist } from "../../firmware-bridge/instrumentBridge.js";
import { SpectrumAnalyzerSimulator } from "../../firmware-bridge/simulator.js";
import { startSimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import { probeHost } from "../host/hostProbe.js";
import { createProgressBar } from "../../common/progressBar.js";
import { renderPlan, renderFacts } from "./probeReport.js";
import { listCatalog } from "../../models/catalog.js";
import { resolveModel } from "../../models/modelResolver.js";
import { ModelStore } from "../../models/modelStore.js";
import { validateModelFile } from "../../models/gguf/ggufValidator.js";
import { writeSyntheticModel } from "../../models/synth/syntheticModel.js";
import { applyProcessPriority } from "../host/priority.js";
import type { PriorityOutcome } from "../host/priority.js";
import { realSmokeProbes, renderSmoke, runSmoke } from "../diagnostics/smoke.js";

/** Options that belong to one command and are not settings (`models synth --shape`). */
function withoutKeys(flags: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(flags).filter(([key]) => !keys.includes(key) && key !== "__exitCode"));
}

interface Context {
  config: AgentConfig;
  logger: Logger;
  priority: PriorityOutcome;
}

function setUp(flags: Record<string, unknown>, commandDefaults: Partial<AgentConfig> = {}, localKeys: string[] = []): Context {
  const { config } = loadConfig({ flags: withoutKeys(flags, localKeys), commandDefaults });
  const logger = createLogger({ level: config.logLevel, file: config.logFile });
  return { config, logger, priority: applyPriority(config) };
}

/** Before any model work starts threads: on the instrument's PC the instrument comes first. */
function applyPriority(config: AgentConfig): PriorityOutcome {
  return applyProcessPriority(config.shape, config.priority);
}

/**
 * The set-up of `run` and `chat`. With the local console on this terminal and the log on the same terminal,
 * the person sees warnings and errors only (through the console, never inside a prompt or an
 * answer); info lines need --log-file or an explicit --log-level.
 */
function setUpConsole(
  flags: Record<string, unknown>,
  commandDefaults: Partial<AgentConfig> = {},
): Context & { gate: TerminalLogGate | undefined } {
  const { config, sources } = loadConfig({ flags: withoutKeys(flags, []), commandDefaults });
  const sharesTerminal = Boolean(process.stdin.isTTY && process.stderr.isTTY) && config.logFile === undefined;
  const gate = sharesTerminal ? new TerminalLogGate(process.stderr) : undefined;
  const level = sharesTerminal && sources.logLevel === "default" && config.logLevel !== "error" ? "warn" : config.logLevel;
  const logger = createLogger({ level, file: config.logFile, gate });
  return { config, logger, priority: applyPriority(config), gate };
}

/** SIGINT/SIGTERM call `onSignal` instead of killing the process; returns the remover. */
function onSignals(onSignal: (signal: NodeJS.Signals) => void): () => void {
  const handler = (signal: NodeJS.Signals) => onSignal(signal);
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}

async function runConsole(flags: Record<string, unknown>, commandDefaults: Partial<AgentConfig>): Promise<number> {
  const { config, logger, gate } = setUpConsole(flags, commandDefaults);
  const agent = await loadAgent(config, logger, { showProgress: Boolean(process.stderr.isTTY) });
  const console = createLocalConsole(agent, config, logger, [], gate);
  // On a TTY readline turns Ctrl-C into its own event; these catch piped input and SIGTERM.
  const removeSignals = onSignals((signal) => (signal === "SIGINT" ? console.interrupt() : console.quit()));
  try {
    await console.run();
  } finally {
    removeSignals();
    agent.service.queue.close();
    await agent.instrument?.close();
    await agent.runtime.dispose();
  }
  return EXIT_OK;
}

function recordLine(file: string, line: string, logger: Logger): void {
  try {
    appendFileSync(file, `${JSON.stringify(line)}\n`);
  } catch (error) {
    logger.error({ err: error, file }, "cannot append to the simulator record");
  }
}

/** `scpi --serve-sim <port>`: the simulated analyzer on a TCP port until SIGINT/SIGTERM. */
async function serveSimulator(portText: string, recordFile: string | undefined, logger: Logger): Promise<number> {
  if (!/^\d+$/.test(portText) || Number(portText) > 65_535)
    throw new AgentError("IA_ERR_USAGE", `--serve-sim: expected a TCP port from 0 to 65535, got ${JSON.stringify(portText)}`);
  const simulator = new SpectrumAnalyzerSimulator({
    onReceive: recordFile ? (line) => recordLine(recordFile, line, logger) : undefined,
  });
  const server = await startSimulatorServer({ port: Number(portText), simulator });
  process.stdout.write(`simulator listening on tcp://${server.host}:${server.port}\n`);
  logger.info({ port: server.port, record: recordFile }, "simulator serving");
  await new Promise<void>((resolve) => {
    const remove = onSignals(() => {
      remove();
      resolve();
    });
  });
  await server.close();
  return EXIT_OK;
}

function readQuestion(question: string): string {
  if (question !== "-") return question;
  return readFileSync(0, "utf8").trim();
}

export function createCommandHandlers(): CommandHandlers {
  return {
    async run(flags) {
      const { config, logger, gate } = setUpConsole(flags);
      const agent = await loadAgent(config, logger, { showProgress: Boolean(process.stderr.isTTY) });
      try {
        return await runTransports({ config, logger, agent, factories: transportFactories(gate) });
      } finally {
        await agent.instrument?.close();
      }
    },
    chat: (flags) => runConsole(flags, { logLevel: "warn" }),

    async ask(question, flags) {
      const raw = flags.raw === true;
      const { config, logger } = setUp(flags, { logLevel: "warn" }, ["raw", "via", "timeout"]);
      const text = readQuestion(question);
      if (text === "") throw new AgentError("IA_ERR_USAGE", "ask: the question is empty");
      if (flags.via !== undefined) {
        const { askVia } = await import("../transports/mqtt/askVia.js");
        return askVia({ url: String(flags.via), question: text, raw, timeout: flags.timeout, flags, config, logger });
      }
      const agent = await loadAgent(config, logger);
      if (agent.runtime.info.isDemo && !config.json) process.stderr.write(`${DEMO_NOTICE}\n`);
      const controller = new AbortController();
      const removeSignals = onSignals(() => controller.abort());
      try {
        const result = await agent.service.answer(raw ? { mode: "raw", prompt: text } : { messages: [{ role: "user", content: text }] }, {
          signal: controller.signal,
          onDelta: config.json ? undefined : (delta) => process.stdout.write(delta),
        });
        if (config.json) {
          process.stdout.write(
            `${JSON.stringify({ model: agent.runtime.info.modelLabel, demo: agent.runtime.info.isDemo, text: result.text, finishReason: result.finishReason, usage: result.usage, timings: result.timings })}\n`,
          );
        } else if (!result.text.endsWith("\n")) {
          process.stdout.write("\n");
        }
        if (agent.instrument && !raw && agent.instrument.context.lastReadable === false) {
          process.stderr.write(
            `note: the instrument at ${agent.instrument.description} could not be read; the answer does not use its live settings\n`,
          );
        }
        if (result.finishReason === "cancelled") {
          process.stderr.write("(answer cancelled)\n");
          return EXIT_RUNTIME;
        }
        return EXIT_OK;
      } finally {
        removeSignals();
        await agent.instrument?.close();
        await agent.runtime.dispose();
      }
    },

    async scpi(query, flags) {
      const local = ["serveSim", "simRecord"];
      const { config, logger } = setUp(flags, { logLevel: "warn" }, local);
      if (flags.serveSim !== undefined)
        return serveSimulator(String(flags.serveSim), typeof flags.simRecord === "string" ? flags.simRecord : undefined, logger);
      if (query === undefined || query.trim() === "")
        throw new AgentError("IA_ERR_USAGE", 'scpi: the query is missing, e.g. instrument-agent scpi --instrument tcp://host:5025 "*IDN?"');
      // The allowlist answers first: a refused line is refused even with no instrument configured.
      const checked = createAllowlist(config.scpiAllow).check(query);
      if (!checked.ok) throw new AgentError("IA_ERR_SCPI_REFUSED", checked.message);
      const bridge = createInstrument(config, logger);
      if (!bridge)
        throw new AgentError(
          "IA_ERR_USAGE",
          "scpi: no instrument is configured: pass --instrument tcp://host:5025, serial://..., prologix://... or sim",
        );
      try {
        const reply = await bridge.query(query);
        process.stdout.write(config.json ? `${JSON.stringify({ instrument: bridge.description, query, reply })}\n` : `${reply}\n`);
        return EXIT_OK;
      } finally {
        await bridge.close();
      }
    },

    async probe(flags) {
      const { config, logger, priority } = setUp(flags, { logLevel: "warn" });
      let result: { facts: unknown; plan: unknown; model: unknown };
      if (config.model) {
        const prepared = await prepareModel(config, logger);
        result = {
          facts: prepared.facts,
          plan: { ...prepared.plan, priority },
          model: { ...prepared.summary, label: prepared.model.label, demo: prepared.model.isDemo },
        };
      } else {
        const facts = await probeHost();
        const plan = planForCatalog(facts, config);
        result = { facts, plan: { ...plan, priority }, model: { label: plan.model.id, chosenFrom: "catalog" } };
      }
      if (config.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else process.stdout.write(`${renderFacts(result.facts as never)}\n\n${renderPlan(result.plan as never)}\n`);
      return EXIT_OK;
    },

    async smoke(flags) {
      const local = ["smokeTokens", "smokeFloor", "smokeTimeout"];
      const number = (key: string, min: number, integer: boolean): number => {
        const value = Number(flags[key]);
        if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
          const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
          throw new AgentError(
            "IA_ERR_USAGE",
            `${flag}: expected ${integer ? "a whole number" : "a number"} >= ${min}, got ${JSON.stringify(flags[key])}`,
          );
        }
        return value;
      };
      const options = {
        tokens: number("smokeTokens", 1, true),
        floorTokensPerSecond: number("smokeFloor", 0, false),
        timeoutMs: number("smokeTimeout", 1, true),
      };
      const { config, logger } = setUp(flags, { logLevel: "error", mqtt: "off" }, local);
      const report = await runSmoke({ config, logger, probes: realSmokeProbes(), ...options });
      process.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : renderSmoke(report));
      return report.ok ? EXIT_OK : EXIT_CHECK_FAILED;
    },

    async bench(flags) {
      const local = ["benchRuns", "benchPrompt", "benchTokens", "benchConcurrency", "llamaBench", "llamaBatchedBench"];
      const whole = (key: string, min: number, max: number): number => {
        const value = Number(flags[key]);
        if (!Number.isInteger(value) || value < min || value > max) {
          throw new AgentError(
            "IA_ERR_USAGE",
            `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(flags[key])}`,
          );
        }
        return value;
      };
      const { parseConcurrency, renderBench, runBench } = await import("../diagnostics/bench/bench.js");
      const options = {
        runs: whole("benchRuns", 1, 100),
        promptTokens: whole("benchPrompt", 8, 4096),
        genTokens: whole("benchTokens", 2, 4096),
        concurrency: parseConcurrency(flags.benchConcurrency),
        llamaBench: typeof flags.llamaBench === "string" ? path.resolve(flags.llamaBench) : undefined,
        llamaBatchedBench: typeof flags.llamaBatchedBench === "string" ? path.resolve(flags.llamaBatchedBench) : undefined,
      };
      const { config, logger } = setUp(flags, { logLevel: "warn", mqtt: "embedded" }, local);
      const tty = process.stderr.isTTY;
      const started = performance.now();
      const progress = (text: string) =>
        process.stderr.write(tty ? `\r\x1b[K${text}` : `bench ${((performance.now() - started) / 1000).toFixed(1)} s: ${text}\n`);
      const report = await runBench({ config, logger, options, onStep: progress });
      if (tty) process.stderr.write("\r\x1b[K");
      process.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : renderBench(report));
      return EXIT_OK;
    },

    async modelsList(flags) {
      const { config } = setUp(flags, { logLevel: "warn" });
      const store = new ModelStore(config.modelsDir);
      const rows = listCatalog().map((entry) => ({ ...entry, present: store.has(entry.fileName) }));
      if (config.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return EXIT_OK;
      }
      const lines = rows.map(
        (r) => `${r.present ? "*" : " "} ${r.id.padEnd(32)} ${(r.sizeBytes / 1e6).toFixed(0).padStart(6)} MB  ${r.uri}`,
      );
      process.stdout.write(
        `  ${"id".padEnd(32)} ${"size".padStart(9)}  source\n${lines.join("\n")}\n\n* present in ${path.resolve(config.modelsDir)}\n`,
      );
      return EXIT_OK;
    },

    async modelsPull(idOrUri, flags) {
      const { config, logger } = setUp(flags, { logLevel: "warn" });
      if (idOrUri === "demo")
        throw new AgentError("IA_ERR_USAGE", "models pull demo: the demo model is synthesized, not downloaded (use --model demo)");
      const resolved = await resolveModel(idOrUri, { modelsDir: config.modelsDir, mirror: config.modelMirror, logger });
      const summary = await validateModelFile(resolved.path);
      process.stdout.write(
        `${resolved.path}: ${summary.architecture} ${summary.fileType}, ${(summary.fileBytes / 1e6).toFixed(1)} MB, valid\n`,
      );
      return EXIT_OK;
    },

    async modelsVerify(file, flags) {
      const expected = typeof flags.sha256 === "string" ? flags.sha256.toLowerCase() : undefined;
      const { config } = setUp(flags, { logLevel: "warn" }, ["sha256"]);
      const report: Record<string, unknown> = { file: path.resolve(file) };
      try {
        const summary = await validateModelFile(file);
        report.gguf = { ok: true, ...summary };
      } catch (error) {
        const agentError = toAgentError(error);
        report.gguf = { ok: false, error: agentError.toJSON() };
        report.ok = false;
        if (config.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else process.stdout.write(`FAIL  ${agentError.code}: ${agentError.message}\n`);
        return EXIT_CHECK_FAILED;
      }
      const store = new ModelStore(path.dirname(path.resolve(file)));
      const catalogSha = listCatalog().find((e) => e.fileName === path.basename(file))?.sha256 ?? undefined;
      const check = await store.verifyFile(path.resolve(file), expected ?? catalogSha ?? undefined);
      report.checksum = check;
      report.ok = check.ok;
      if (config.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        const g = report.gguf as { architecture: string; fileType: string; blockCount: number; embeddingLength: number };
        process.stdout.write(`ok    GGUF: ${g.architecture} ${g.fileType}, ${g.blockCount} blocks, embedding ${g.embeddingLength}\n`);
        process.stdout.write(
          check.expected
            ? `${check.ok ? "ok  " : "FAIL"}  SHA-256 ${check.actual}${check.ok ? "" : ` (expected ${check.expected})`}\n`
            : `ok    SHA-256 ${check.actual} (nothing recorded to compare with)\n`,
        );
      }
      return check.ok ? EXIT_OK : EXIT_CHECK_FAILED;
    },

    async modelsSynth(flags) {
      const local = ["shape", "type", "seed", "out"];
      const { config } = setUp(flags, { logLevel: "warn" }, local);
      const shape = String(flags.shape);
      const type = String(flags.type);
      const seed = Number(flags.seed);
      if (!Number.isInteger(seed) || seed < 0)
        throw new AgentError("IA_ERR_USAGE", `--seed: expected a whole number >= 0, got ${JSON.stringify(flags.seed)}`);
      const out = path.resolve(typeof flags.out === "string" ? flags.out : path.join(config.modelsDir, `synth-${shape}-${type}.gguf`));
      await mkdir(path.dirname(out), { recursive: true });
      const bar = createProgressBar({ label: `writing ${path.basename(out)}` });
      const result = await writeSyntheticModel({
        shape: shape as never,
        type: type as never,
        seed,
        outPath: out,
        onProgress: (progress) => bar.update(progress.bytesWritten, progress.totalBytes),
      });
      bar.done();
      process.stdout.write(
        `${out}: ${shape} ${type}, ${result.tensorCount} tensors, ${(result.bytes / 1e6).toFixed(1)} MB (random weights)\n`,
      );
      return EXIT_OK;
    },
  };
}
