import { Command, Option } from "commander";

/**
 * The command line: commands, flags and help text of DESIGN.md section 3. Parsing only:
 * each action hands its arguments and raw flag values to a handler, and config.ts decides
 * precedence and validity so that flags, environment and file share one set of rules.
 */

export interface CommandHandlers {
  run(flags: Record<string, unknown>): Promise<number>;
  chat(flags: Record<string, unknown>): Promise<number>;
  ask(question: string, flags: Record<string, unknown>): Promise<number>;
  probe(flags: Record<string, unknown>): Promise<number>;
  modelsList(flags: Record<string, unknown>): Promise<number>;
  modelsPull(idOrUri: string, flags: Record<string, unknown>): Promise<number>;
  modelsVerify(file: string, flags: Record<string, unknown>): Promise<number>;
  modelsSynth(flags: Record<string, unknown>): Promise<number>;
}

export interface ProgramOutput {
  writeOut(text: string): void;
  writeErr(text: string): void;
}

const SHARED_HELP = `
Settings come from flags, then IAGENT_<NAME> environment variables (IAGENT_THREADS=2,
IAGENT_MODELS_DIR=...), then the config file (YAML or JSON, keys in camelCase), then defaults.

Exit codes: 0 success, 1 runtime failure, 2 bad usage/config/input file, 3 a check failed.`;

function addSharedOptions(program: Command): void {
  program
    .option("--config <file>", "YAML or JSON config file (default: ./instrument-agent.yaml if present)")
    .option("--model <path|catalog-id|hf:uri|demo>", "the model; `demo` makes a tiny random-weight model (random answers) for trying the plumbing offline")
    .option("--models-dir <dir>", "where models are stored (default: ./models-data)")
    .option("--model-mirror <url>", "HTTP base that replaces https://huggingface.co for downloads (lab mirror)")
    .option("--threads <n|auto>", "generation threads (default: auto)")
    .option("--mlock <on|off|auto>", "pin the model in RAM (default: auto)")
    .option("--context <n|auto>", "context size in tokens (default: auto)")
    .option("--parallel <n|auto>", "answers generated at once, one context sequence each (default: auto)")
    .option("--reserve-mem <MiB>", "memory left for the instrument and OS (default: depends on --shape)")
    .option("--reserve-cores <n>", "cores left for the instrument and OS (default: depends on --shape)")
    .option("--shape <on-instrument|beside-instrument>", "where the agent runs (default: beside-instrument)")
    .option("--mqtt <url|embedded|off>", "MQTT broker (default: embedded for run)")
    .option("--agent-id <id>", "MQTT identity (default: host name)")
    .option("--fleet <group>", "also take questions from this fleet group's shared topic")
    .option("--serial <path|off>", "serial console port (default: off)")
    .option("--baud <n>", "serial speed (default: 115200, 8N1)")
    .option("--instrument <uri|off>", "firmware bridge: tcp://host:5025, serial://..., prologix://..., sim (default: off)")
    .option("--system <text>", "system prompt (default: a short bilingual prompt)")
    .option("--temperature <t>", "sampling temperature, 0 = greedy (default: the model's)")
    .option("--top-k <k>", "top-k sampling (default: the model's)")
    .option("--top-p <p>", "top-p sampling (default: the model's)")
    .option("--repeat-penalty <r>", "repeat penalty, 1 = off (default: the model's)")
    .option("--max-tokens <n>", "most tokens in one answer (default: 512)")
    .option("--seed <n>", "sampling seed (default: random)")
    .option("--log-level <level>", "fatal|error|warn|info|debug|trace|silent (default: info)")
    .option("--log-file <file>", "append JSON log lines to this file (default: stderr)")
    .option("--json", "machine-readable output where the command has it")
    .option("--color", "force colour on")
    .option("--no-color", "no colour even on a terminal");
}

export function buildProgram(handlers: CommandHandlers, output: ProgramOutput, version: string): Command {
  const program = new Command("instrument-agent");
  program
    .description("A local Qwen model beside a lab instrument: ask on the console, a serial line or MQTT.")
    .version(version, "-V, --version")
    .configureOutput({ writeOut: output.writeOut, writeErr: output.writeErr })
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  addSharedOptions(program);
  program.addHelpText("after", SHARED_HELP);

  const flagsOf = (command: Command) => command.optsWithGlobals();
  // Every action stores its exit code here; commander's own promise resolves to the program.
  const run = (promise: Promise<number>) =>
    promise.then((code) => {
      program.setOptionValue("__exitCode", code);
    });

  program
    .command("run", { isDefault: true })
    .description("start every configured transport and serve until SIGINT/SIGTERM (default command)")
    .action((_opts, command: Command) => run(handlers.run(flagsOf(command))));

  program
    .command("chat")
    .description("interactive console on this terminal: /help, /reset, /status, /bye; Ctrl-C cancels an answer")
    .addHelpText("after", "\nInput may be piped: each line is a question or a command; `stop`, `/bye` or end of input quits.")
    .action((_opts, command: Command) => run(handlers.chat(flagsOf(command))));

  program
    .command("ask")
    .description("answer one question on stdout and exit (`-` reads the question from stdin)")
    .argument("<text...>", "the question")
    .addOption(new Option("--raw", "complete the text as is, without the chat template"))
    .addHelpText("after", '\nExample:\n  instrument-agent ask --model demo --temperature 0 --max-tokens 16 "你好"')
    .action((words: string[], _opts, command: Command) => run(handlers.ask(words.join(" "), flagsOf(command))));

  program
    .command("probe")
    .description("host facts and the resource plan the agent would use, with a reason for each choice (--json)")
    .action((_opts, command: Command) => run(handlers.probe(flagsOf(command))));

  const models = program.command("models").description("model catalog, download, validation and synthetic models");
  models
    .command("list")
    .description("the catalog of Qwen GGUF builds and which are present in --models-dir (--json)")
    .action((_opts, command: Command) => run(handlers.modelsList(flagsOf(command))));
  models
    .command("pull")
    .description("download a catalog model or hf: URI with progress, resume and checksum")
    .argument("<id-or-uri>", "catalog id (see `models list`), hf:<user>/<repo>/<file> or an http(s) URL")
    .action((idOrUri: string, _opts, command: Command) => run(handlers.modelsPull(idOrUri, flagsOf(command))));
  models
    .command("verify")
    .description("validate a GGUF file and its SHA-256 (exit 3 when a check fails)")
    .argument("<file>", "the model file")
    .option("--sha256 <hex>", "expected SHA-256 (default: the catalog's or the one recorded at download)")
    .action((file: string, _opts, command: Command) => run(handlers.modelsVerify(file, flagsOf(command))));
  models
    .command("synth")
    .description("write a random-weight GGUF with the exact tensor shapes of a real model (for tests and benchmarks)")
    .addOption(new Option("--shape <shape>", "model shape").choices(["tiny", "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen3-0.6b"]).default("tiny"))
    .addOption(new Option("--type <type>", "weight type").choices(["f16", "q8_0", "q4_0"]).default("q8_0"))
    .option("--seed <n>", "seed for the random weights", "1")
    .option("--out <file>", "output file (default: <models-dir>/synth-<shape>-<type>.gguf)")
    .addHelpText("after", "\nSpeed does not depend on weight values, so these files time the same kernels as the real models.")
    .action((_opts, command: Command) => run(handlers.modelsSynth(flagsOf(command))));

  return program;
}
