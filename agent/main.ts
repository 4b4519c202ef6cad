import { CommanderError } from "commander";
import { buildProgram } from "./cli/program.js";
import { EXIT_USAGE, toAgentError } from "../common/errors.js";
import { VERSION } from "../common/version.js";
import { installLastResortHandlers } from "../common/lastResort.js";

/**
 * Process entry. Turns every outcome into an exit code (README, "Exit codes and errors"): nothing a
 * user types or a file contains may end the process by a signal or a stack trace.
 */
export async function main(argv: string[]): Promise<number> {
  const cli = buildProgram({ writeOut: (text) => process.stdout.write(text), writeErr: (text) => process.stderr.write(text) }, VERSION);
  try {
    return await cli.run(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version end with exit code 0; every other parse error is bad usage.
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const agentError = toAgentError(error);
    process.stderr.write(`error ${agentError.code}: ${agentError.message}\n`);
    if (agentError.code === "IA_ERR_INTERNAL" && error instanceof Error && error.stack) {
      process.stderr.write(`${error.stack}\n`);
    }
    return agentError.exitCode;
  }
}

installLastResortHandlers();
// A closed pipe on stdout (e.g. `| head`) is not a reason to crash with EPIPE.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
});

if (process.env.INSTRUMENT_AGENT_ENGINE_CHILD === "1" && process.send) {
  // The bundle forked as the engine process (engineProcess.ts); from a checkout engineMain.ts is forked itself.
  await import("./engine/process/engineMain.js");
} else {
  const code = await main(process.argv);
  // Let stdout drain, then exit even if a native handle (llama.cpp, a socket) is still open.
  process.exitCode = code;
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}
