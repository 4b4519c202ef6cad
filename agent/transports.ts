import type { TransportFactory } from "./agentRunner.js";
import { LocalConsole } from "./localConsole.js";
import { consoleBanner, useColor } from "./consoleText.js";

/** The local console serves `run` when a person is at this terminal. */
const localConsole: TransportFactory = (agent, config, logger) => {
  if (!process.stdin.isTTY) return undefined;
  return new LocalConsole({
    input: process.stdin,
    output: process.stdout,
    service: agent.service,
    logger,
    color: useColor(config, process.stdout),
    banner: consoleBanner(agent),
  });
};

/** Every transport `run` may start, in start order (stopped in reverse). */
export const TRANSPORT_FACTORIES: TransportFactory[] = [localConsole];
