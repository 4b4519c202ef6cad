import { EXIT_RUNTIME, toAgentError } from "./errors.js";

/**
 * The handlers of last resort for both entries (the agent and the engine process): an error
 * that escapes ends the process with one coded line and the runtime exit code, never a stack
 * trace or a signal. Installing them twice (the bundle's engine child runs main.ts first) is
 * harmless: the first to run exits.
 */
export function installLastResortHandlers(): void {
  const die = (kind: string) => (error: unknown) => {
    const agentError = toAgentError(error);
    process.stderr.write(`error ${agentError.code}: ${kind}: ${agentError.message}\n`);
    process.exit(EXIT_RUNTIME);
  };
  process.on("uncaughtException", die("uncaught exception"));
  process.on("unhandledRejection", die("unhandled rejection"));
}
