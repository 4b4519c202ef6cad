import { loadConfig } from "../config/config.js";
import type { AgentConfig } from "../config/config.js";
import type { SettingKey } from "../config/settings.js";
import { createLogger, TerminalLogGate } from "../../common/logger.js";
import type { Logger } from "../../common/logger.js";
import { applyProcessPriority } from "../host/priority.js";
import type { PriorityOutcome } from "../host/priority.js";
import { EXIT_RUNTIME } from "../../common/errors.js";
import { loadAgent } from "../service/loadAgent.js";
import type { LoadedAgent } from "../service/loadAgent.js";

/**
 * What every command starts with: the config from its four layers, the logger, and the
 * process priority; plus the SIGINT/SIGTERM hook the long-running commands share.
 */

/** The settings typed on the command line (raw, keyed like the config) and `config`, the file. */
export type SettingFlags = Partial<Record<SettingKey | "config", string | boolean>>;

export interface Context {
  config: AgentConfig;
  logger: Logger;
  priority: PriorityOutcome;
}

export interface ConsoleContext extends Context {
  /** Holds log lines back while the console on the same terminal draws a prompt or an answer. */
  gate: TerminalLogGate | undefined;
}

export function setUp(flags: SettingFlags, commandDefaults: Partial<AgentConfig> = {}): Context {
  const { config } = loadConfig({ flags, commandDefaults });
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
export function setUpConsole(flags: SettingFlags, commandDefaults: Partial<AgentConfig> = {}): ConsoleContext {
  const { config, sources } = loadConfig({ flags, commandDefaults });
  const sharesTerminal = Boolean(process.stdin.isTTY && process.stderr.isTTY) && config.logFile === undefined;
  const gate = sharesTerminal ? new TerminalLogGate(process.stderr) : undefined;
  const level = sharesTerminal && sources.logLevel === "default" && config.logLevel !== "error" ? "warn" : config.logLevel;
  const logger = createLogger({ level, file: config.logFile, gate });
  return { config, logger, priority: applyPriority(config), gate };
}

/** SIGINT/SIGTERM call `onSignal` instead of killing the process; returns the remover. */
export function onSignals(onSignal: (signal: NodeJS.Signals) => void): () => void {
  const handler = (signal: NodeJS.Signals) => onSignal(signal);
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}

/** A signal remembered while the model loads: see {@link holdSignals}. */
export interface HeldSignals {
  /** The first SIGINT/SIGTERM that came, if any. */
  readonly signal: NodeJS.Signals | undefined;
  /** Stops holding: from here the caller's own handlers take over. */
  release(): void;
}

/**
 * Loading a model takes seconds (minutes for a large one on a slow disk), and Node's default for
 * SIGTERM and SIGINT is to die by the signal. Until `release`, the first one is remembered (the
 * command then stops cleanly, exit 0, as soon as the load is done) and a second one exits at once
 * with the runtime exit code, for a person who does not want to wait.
 */
export function holdSignals(logger: Logger): HeldSignals {
  let signal: NodeJS.Signals | undefined;
  const handler = (received: NodeJS.Signals) => {
    if (signal) {
      process.stderr.write(`${received} again while loading: exiting now\n`);
      process.exit(EXIT_RUNTIME);
    }
    signal = received;
    logger.warn({ signal }, "stopping as soon as the model has loaded (again to exit at once)");
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    get signal() {
      return signal;
    },
    release() {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}

/**
 * `loadAgent` with signals held (see {@link holdSignals}): the agent, or undefined, with
 * everything already disposed, when a SIGINT or SIGTERM came while it loaded.
 */
export async function loadAgentUnlessStopped(context: Context, options: { showProgress?: boolean } = {}): Promise<LoadedAgent | undefined> {
  const held = holdSignals(context.logger);
  const agent = await loadAgent(context.config, context.logger, options).finally(() => held.release());
  if (!held.signal) return agent;
  agent.service.queue.close();
  await agent.instrument?.close();
  await agent.runtime.dispose();
  return undefined;
}
