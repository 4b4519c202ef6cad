import { Command } from "commander";
import { EXIT_OK } from "../../common/errors.js";
import { addCommand, globalOptions } from "./commandSpec.js";
import { askCommand } from "./commands/ask.js";
import { benchCommand } from "./commands/bench.js";
import { chatCommand } from "./commands/chat.js";
import { mcpCommand } from "./commands/mcp.js";
import { modelsListCommand } from "./commands/models/list.js";
import { modelsPullCommand } from "./commands/models/pull.js";
import { modelsSynthCommand } from "./commands/models/synth.js";
import { modelsVerifyCommand } from "./commands/models/verify.js";
import { probeCommand } from "./commands/probe.js";
import { runCommand } from "./commands/run.js";
import { scpiCommand } from "./commands/scpi.js";
import { smokeCommand } from "./commands/smoke.js";

/**
 * The command line of the README's "Commands" and "Settings". The program itself takes only the options every
 * command uses (the config file and the log); each command declares the settings it reads,
 * so a flag name means one thing wherever it is typed (`models synth --shape` is the model's
 * shape, never the deployment's).
 */

export interface ProgramOutput {
  writeOut(text: string): void;
  writeErr(text: string): void;
}

export interface Cli {
  program: Command;
  /** Parses `argv` (node and script first), runs the command, and resolves to its exit code. */
  run(argv: string[]): Promise<number>;
}

const SHARED_HELP = `
Each command's --help lists its own options. Settings come from flags, then IAGENT_<NAME>
environment variables (IAGENT_THREADS=2, IAGENT_MODELS_DIR=...), then the config file (YAML or
JSON, keys in camelCase), then defaults.

Exit codes: 0 success, 1 runtime failure, 2 bad usage/config/input file, 3 a check failed.`;

export function buildProgram(output: ProgramOutput, version: string): Cli {
  // The handler's exit code, kept here: commander's own promise resolves to the program.
  let exitCode = EXIT_OK;
  const finish = (code: number) => {
    exitCode = code;
  };
  const program = new Command("instrument-agent");
  program
    .description("A local Qwen model beside a lab instrument: ask on the console, a serial line or MQTT.")
    .version(version, "-V, --version")
    .configureOutput({ writeOut: output.writeOut, writeErr: output.writeErr })
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  for (const option of globalOptions()) program.addOption(option);
  program.addHelpText("after", SHARED_HELP);

  addCommand(program, runCommand, finish);
  addCommand(program, chatCommand, finish);
  addCommand(program, askCommand, finish);
  addCommand(program, probeCommand, finish);
  addCommand(program, smokeCommand, finish);
  addCommand(program, benchCommand, finish);
  addCommand(program, scpiCommand, finish);
  addCommand(program, mcpCommand, finish);
  const models = program.command("models").description("model catalog, download, validation and synthetic models");
  addCommand(models, modelsListCommand, finish);
  addCommand(models, modelsPullCommand, finish);
  addCommand(models, modelsVerifyCommand, finish);
  addCommand(models, modelsSynthCommand, finish);

  return {
    program,
    async run(argv) {
      exitCode = EXIT_OK;
      await program.parseAsync(argv);
      return exitCode;
    },
  };
}
