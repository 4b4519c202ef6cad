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
  smoke(flags: Record<string, unknown>): Promise<number>;
  bench(flags: Record<string, unknown>): Promise<number>;
  scpi(query: string | undefined, flags: Record<string, unknown>): Promise<number>;
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
    .option(
      "--model <path|catalog-id|hf:uri|demo>",
      "the model; `demo` makes a tiny random-weight model (random answers) for trying the plumbing offline",
    )
    .option("--models-dir <dir>", "where models are stored (default: ./models-data)")
    .option("--state-dir <dir>", "the agent's own data, e.g. the persistence of the mosquitto it runs (default: ./state-data)")
    .option("--model-mirror <url>", "HTTP base that replaces https://huggingface.co for downloads (lab mirror)")
    .option("--threads <n|auto>", "generation threads (default: auto)")
    .option("--mlock <on|off|auto>", "pin the model in RAM (default: auto)")
    .option("--context <n|auto>", "context size in tokens (default: auto)")
    .option("--parallel <n|auto>", "answers generated at once, one context sequence each (default: auto)")
    .option("--reserve-mem <MiB>", "memory left for the instrument and OS (default: depends on --shape)")
    .option("--reserve-cores <n>", "cores left for the instrument and OS (default: depends on --shape)")
    .option("--shape <on-instrument|beside-instrument>", "where the agent runs (default: beside-instrument)")
    .option("--priority <auto|low|normal>", "this process's CPU priority; auto lowers it with --shape on-instrument (default: auto)")
    .option("--engine <process|inline>", "run llama.cpp in its own engine process, or inside this one (default: process)")
    .option("--gpu <auto|off>", "use a GPU if node-llama-cpp finds one (CUDA, Vulkan, Metal), or CPU only (default: off)")
    .option("--gpu-layers <n|auto>", "layers offloaded to the GPU with --gpu auto (default: auto, as many as fit)")
    .option("--numa <off|distribute|isolate>", "llama.cpp's NUMA policy on multi-socket hosts (default: off)")
    .option("--mqtt <url|embedded|off>", "MQTT broker (default: embedded for run)")
    .option("--agent-id <id>", "MQTT identity (default: host name)")
    .option("--fleet <group>", "also take questions from this fleet group's shared topic")
    .option("--mqtt-prefix <prefix>", "first level of every MQTT topic (default: instrument-agent)")
    .option("--mqtt-version <5|3.1.1>", "MQTT protocol for an external broker (default: 5; the aedes fallback broker speaks 3.1.1)")
    .option("--mqtt-username <name>", "broker user name; with --mqtt embedded, the one login the broker accepts (default: none)")
    .option("--mqtt-password <password>", "broker password; prefer IAGENT_MQTT_PASSWORD, a flag shows in `ps` (default: none)")
    .option("--mqtt-ca <file>", "CA certificate (PEM) for mqtts:// (default: the system's CAs)")
    .option("--mqtt-cert <file>", "client certificate (PEM) for mqtts:// (default: none)")
    .option("--mqtt-key <file>", "client certificate key (PEM) (default: none)")
    .option(
      "--mqtt-bind <host:port>",
      "where the embedded broker listens; beyond loopback it needs a user name and password (default: 127.0.0.1:1883)",
    )
    .option("--mqtt-payload-limit <bytes>", "largest MQTT request read (default: 65536)")
    .option("--mqtt-rate-limit <n>", "questions a minute per requester, 0 = no limit (default: 60)")
    .option("--mqtt-health-interval <s>", "seconds between <base>/health messages (default: 60)")
    .option("--serial <path|off>", "serial console port (default: off)")
    .option("--baud <n>", "serial speed (default: 115200, 8N1)")
    .option("--serial-data-bits <5-8>", "serial data bits (default: 8)")
    .option("--serial-parity <none|even|odd|mark|space>", "serial parity; mark and space only on Windows (default: none)")
    .option("--serial-stop-bits <1|1.5|2>", "serial stop bits; 1.5 only on Windows (default: 1)")
    .option("--serial-flow <none|rtscts|xonxoff>", "serial flow control (default: none)")
    .option("--serial-charset <utf8|ascii>", "what the serial terminal can show; ascii replaces the rest with ? (default: utf8)")
    .option("--serial-wrap <columns>", "break answer lines on the serial console at this width, 0 = off (default: 0)")
    .option("--serial-line-limit <chars>", "longest line accepted on the serial console (default: 1000)")
    .option("--instrument <uri|off>", "firmware bridge: tcp://host:5025, serial://..., prologix://..., sim (default: off)")
    .option("--scpi-allow <queries>", "extra read-only SCPI queries for the allowlist, comma-separated (e.g. :SENS:DET:TRAC?)")
    .option("--scpi-timeout <ms>", "how long one SCPI reply may take (default: 3000)")
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
    .option(
      "--via <url>",
      "ask the agent --agent-id (or the --fleet group) through this broker instead of loading a model, e.g. mqtt://lab-broker:1883",
    )
    .option("--timeout <s>", "with --via: longest wait for the answer to start or go on (default: 120)")
    .addHelpText(
      "after",
      '\nExamples:\n  instrument-agent ask --model demo --temperature 0 --max-tokens 16 "你好"\n  instrument-agent ask --via mqtt://127.0.0.1:1883 --agent-id analyzer-1 "What is RBW?"',
    )
    .action((words: string[], _opts, command: Command) => run(handlers.ask(words.join(" "), flagsOf(command))));

  program
    .command("probe")
    .description("host facts and the resource plan the agent would use, with a reason for each choice (--json)")
    .action((_opts, command: Command) => run(handlers.probe(flagsOf(command))));

  program
    .command("smoke")
    .description(
      "headless smoke test of this host: probe, model, load, speed, mlock, and the configured MQTT/serial/instrument (--json; exit 3 if a check fails)",
    )
    .option("--smoke-tokens <n>", "tokens to generate", "16")
    .option("--smoke-floor <tokens/s>", "lowest acceptable generation speed", "1")
    .option("--smoke-timeout <ms>", "longest wait for each MQTT, serial or instrument check", "5000")
    .addHelpText(
      "after",
      "\nExample:\n  instrument-agent smoke --model ./models-data/qwen2.5-0.5b-instruct-q8_0.gguf --mqtt mqtt://127.0.0.1 --json",
    )
    .action((_opts, command: Command) => run(handlers.smoke(flagsOf(command))));

  program
    .command("bench")
    .description(
      "speed on one model and thread count: prompt and generation tokens/s, TTFT, load time, peak RSS; in process, over MQTT and with concurrent requesters, against the plain node-llama-cpp loop (--json)",
    )
    .option("--bench-runs <n>", "interleaved rounds; figures are medians", "5")
    .option("--bench-prompt <tokens>", "prompt length in tokens, chat template included", "64")
    .option("--bench-tokens <n>", "tokens generated per request", "64")
    .option("--bench-concurrency <list>", "concurrent requester counts, comma-separated", "1,2,4")
    .option(
      "--llama-bench <file>",
      "also run llama.cpp's own llama-bench binary in every round, for the ratio to llama.cpp (README, Speed)",
    )
    .option(
      "--llama-batched-bench <file>",
      "also run llama.cpp's llama-batched-bench in every round: the ceiling for concurrent requesters (README, Speed)",
    )
    .addHelpText(
      "after",
      "\nWith --mqtt embedded (default) an in-process broker carries the MQTT run; --mqtt <url> uses that broker, --mqtt off skips it.\nExample:\n  instrument-agent bench --model ./models-data/synth-qwen2.5-0.5b-q8_0.gguf --threads auto --json",
    )
    .action((_opts, command: Command) => run(handlers.bench(flagsOf(command))));

  program
    .command("scpi")
    .description("send one read-only SCPI query to --instrument and print the reply (exit 2 if the allowlist refuses it)")
    .argument("[query]", 'the query, e.g. "*IDN?" or ":SENSe:FREQuency:CENTer?"')
    .option("--serve-sim <port>", "instead: serve the simulated spectrum analyzer on this TCP port (0 = any) until SIGINT/SIGTERM")
    .option("--sim-record <file>", "with --serve-sim: append every line the simulator receives to this file (one JSON string a line)")
    .addHelpText(
      "after",
      '\nExamples:\n  instrument-agent scpi --instrument tcp://192.168.1.20:5025 ":SENS:BAND:RES?"\n  instrument-agent scpi --serve-sim 5025',
    )
    .action((query: string | undefined, _opts, command: Command) => run(handlers.scpi(query, flagsOf(command))));

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
