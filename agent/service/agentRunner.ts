import type { AgentConfig } from "../config/config.js";
import { EXIT_OK, EXIT_RUNTIME, toAgentError } from "../../common/errors.js";
import type { AgentError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { LoadedAgent } from "./loadAgent.js";
import type { Transport } from "../transports/transport.js";
import { withDeadline } from "../../common/async.js";
import { createSdNotifier } from "./sdNotify.js";
import type { SdNotifier } from "./sdNotify.js";

/**
 * Builds one transport from the loaded agent, or returns undefined when it is not configured.
 * `started` lists the transports already running (the console shows their state).
 */
export type TransportFactory = (
  agent: LoadedAgent,
  config: AgentConfig,
  logger: Logger,
  started: readonly Transport[],
) => Transport | undefined | Promise<Transport | undefined>;

/**
 * A transport that starts before the model loads (the HTTP API, so `/health` can say
 * `loading`) and is handed the agent once it is ready, with the transports started so far.
 */
export interface EarlyTransport extends Transport {
  attach(agent: LoadedAgent, peers: readonly Transport[]): void;
}

export type EarlyTransportFactory = (
  config: AgentConfig,
  logger: Logger,
) => EarlyTransport | undefined | Promise<EarlyTransport | undefined>;

export interface RunOptions {
  config: AgentConfig;
  logger: Logger;
  agent: LoadedAgent;
  factories: TransportFactory[];
  /** Transports already started before the model loaded (serveAgent); they are attached first and stopped last. Defaults to none. */
  early?: EarlyTransport[];
  /** How long each transport gets to stop. Defaults to 5000 ms. */
  stopDeadlineMs?: number;
  /** systemd's READY/WATCHDOG/STOPPING notifications. Defaults to one read from the environment (a no-op without NOTIFY_SOCKET). */
  notifier?: SdNotifier;
}

export interface ServeOptions extends Omit<RunOptions, "agent" | "early"> {
  /** Started, in order, before `load`. Defaults to none. */
  early?: EarlyTransportFactory[];
  /** Loads the model; undefined when a signal came while it loaded (it disposed what it made). */
  load: () => Promise<LoadedAgent | undefined>;
}

/**
 * `run` from the very start: the early transports listen first (the HTTP API answers 503
 * `loading`), then the model loads, then runTransports attaches them and starts the rest.
 * A load that fails or is stopped by a signal stops the early ones in reverse.
 */
export async function serveAgent(options: ServeOptions): Promise<number> {
  const { config, logger } = options;
  const early: EarlyTransport[] = [];
  const stopEarly = async () => {
    for (const transport of [...early].reverse())
      await transport.stop({ ms: options.stopDeadlineMs ?? 5000 }).catch((error: unknown) => {
        logger.error({ err: toAgentError(error), transport: transport.name }, "transport failed to stop cleanly");
      });
  };
  let agent: LoadedAgent | undefined;
  try {
    for (const factory of options.early ?? []) {
      const transport = await factory(config, logger);
      if (!transport) continue;
      await transport.start();
      early.push(transport);
      logger.info({ transport: transport.name }, "started, before the model loads");
    }
    agent = await options.load();
  } catch (error) {
    await stopEarly();
    throw error;
  }
  if (!agent) {
    await stopEarly();
    return EXIT_OK;
  }
  return runTransports({ ...options, agent, early });
}

/**
 * The `run` lifecycle, in the order of docs/ARCHITECTURE.md#shutdown-order:
 * 1. start transports in order after the early ones (a failure stops those already started, then fails the run);
 * 2. serve until SIGINT/SIGTERM, or until a transport ends by itself (`/bye` on the console);
 * 3. stop in reverse: each stops accepting, cancels in-flight work by its deadline and
 *    says goodbye; then the queue closes and the model is disposed;
 * 4. the exit code says whether every step succeeded.
 * Under systemd (`Type=notify`), READY=1 goes out once every transport has started (the model
 * is already loaded), WATCHDOG=1 while serving, STOPPING=1 when the stop begins (sdNotify.ts).
 */
export async function runTransports(options: RunOptions): Promise<number> {
  const { config, logger, agent } = options;
  const notifier = options.notifier ?? createSdNotifier({ logger });
  const deadline = { ms: options.stopDeadlineMs ?? 5000 };
  const started: Transport[] = [...(options.early ?? [])];
  for (const transport of options.early ?? []) transport.attach(agent, started);
  let failed = false;

  const stopAll = async () => {
    for (const transport of [...started].reverse()) {
      try {
        await withDeadline(transport.stop(deadline), deadline.ms + 1000, `${transport.name} did not stop in time`);
        logger.debug({ transport: transport.name }, "stopped");
      } catch (error) {
        failed = true;
        logger.error({ err: toAgentError(error), transport: transport.name }, "transport failed to stop cleanly");
      }
    }
    agent.service.queue.close();
    await agent.runtime.dispose();
  };

  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const signalled = new Promise<string>((resolve) => (onSignal = resolve));
  // Installed before the transports start (a signal then ends the run once they have), and they stay
  // until the process exits: a second Ctrl-C while stopping must not kill it.
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) logger.warn({ signal }, "already stopping; waiting for in-flight work to end");
    onSignal(signal);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);

  try {
    for (const factory of options.factories) {
      const transport = await factory(agent, config, logger, started);
      if (!transport) continue;
      await transport.start();
      started.push(transport);
      logger.info({ transport: transport.name }, "started");
    }
  } catch (error) {
    logger.error({ err: toAgentError(error) }, "a transport could not start; stopping");
    await stopAll();
    throw error;
  }

  if (started.length === 0) {
    logger.warn("no transport is configured (no terminal on stdin, --mqtt off, --serial off): nothing to serve");
    await stopAll();
    return EXIT_OK;
  }
  notifier.ready();

  // A transport that gives up with an error (MQTT: the id is taken) leaves the others serving;
  // one that ends without (the person typed /bye), or the last one standing, ends the run.
  let serving = started.length;
  let gaveUp: AgentError | undefined;
  const endedByItself = started
    .filter((t) => t.ended)
    .map(
      (t) =>
        new Promise<string>((resolve) => {
          void t.ended!.then((error) => {
            if (!error) return resolve(`${t.name} ended`);
            serving -= 1;
            if (serving === 0) {
              gaveUp = error;
              resolve(`${t.name} gave up (${error.code}) and no other transport is serving`);
            }
          });
        }),
    );
  const stopWatching = watchNpmParent(() => {
    logger.info("the npm that started this agent has ended (npm passes SIGTERM to its sh, not to the agent): stopping as on SIGTERM");
    handler("SIGTERM");
  });
  const why = await Promise.race([signalled, ...endedByItself]);
  stopWatching();
  stopping = true;
  notifier.stopping();
  logger.info({ why }, "stopping");
  await stopAll();
  // The reason the last transport gave up is the run's error: `error <CODE>: ...`, exit 1.
  if (gaveUp) throw gaveUp;
  return failed ? EXIT_RUNTIME : EXIT_OK;
}

/**
 * Under `npm start`, `kill <npm>` reaches npm's `sh -c`, which ends, and never the agent,
 * which would run on orphaned, holding its ports. So when npm started it, the agent watches
 * its parent: a new parent (the orphan's reaper) means the one that started it is gone.
 */
function watchNpmParent(onGone: () => void): () => void {
  if (process.env.npm_lifecycle_event === undefined || process.platform === "win32") return () => undefined;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone();
  }, 1000);
  timer.unref();
  return () => clearInterval(timer);
}
