import { EXIT_RUNTIME, toAgentError } from "../../../common/errors.js";
import { serveEngine } from "./engineWorker.js";

/**
 * The engine process's entry: llama.cpp served over IPC until the agent disconnects.
 * engineProcess.ts forks this file under tsx when the agent runs from a checkout, so an edit
 * to the engine is live without a build. The release is one bundle, so there the agent forks
 * the bundle with INSTRUMENT_AGENT_ENGINE_CHILD=1 and main.ts imports this module.
 */

// The engine writes to the agent's stderr: an error that escapes ends it with one line, not a
// stack trace, and the agent reports IA_ERR_ENGINE_EXITED. (In the bundle main.ts has already
// installed the same handlers; the first to run exits.)
const die = (kind: string) => (error: unknown) => {
  const agentError = toAgentError(error);
  process.stderr.write(`error ${agentError.code}: ${kind}: ${agentError.message}\n`);
  process.exit(EXIT_RUNTIME);
};
process.on("uncaughtException", die("uncaught exception"));
process.on("unhandledRejection", die("unhandled rejection"));

await serveEngine();
