import path from "node:path";
import { EXIT_OK } from "../../../common/errors.js";
import { settingsIn } from "../../config/settings.js";
import type { CommandSpec } from "../commandSpec.js";
import { text, wholeNumber } from "../commandOption.js";

/** `bench`: speed on one model and thread count, in process, over MQTT and against the plain node-llama-cpp loop. */

interface BenchOptions {
  benchRuns: number;
  benchPrompt: number;
  benchTokens: number;
  benchConcurrency: string | undefined;
  llamaBench: string | undefined;
  llamaBatchedBench: string | undefined;
  llamaCompletion: string | undefined;
  completionPairs: number;
}

export const benchCommand: CommandSpec<BenchOptions> = {
  name: "bench",
  description:
    "speed on one model and thread count: prompt and generation tokens/s, TTFT, load time, peak RSS; in process, over MQTT and with concurrent requesters, against the plain node-llama-cpp loop (--json)",
  // The MQTT run needs the broker, its login and the topic prefix; the agent id is bench's own.
  settings: [...settingsIn("model", "host", "broker"), "mqtt", "mqttPrefix", "instrument", "scpiAllow", "scpiTimeout", "system", "json"],
  defaults: { logLevel: "warn", mqtt: "embedded" },
  options: {
    benchRuns: { arg: "<n>", help: "interleaved rounds; figures are medians", default: "5", parse: wholeNumber(1, 100) },
    benchPrompt: { arg: "<tokens>", help: "prompt length in tokens, chat template included", default: "64", parse: wholeNumber(8, 4096) },
    benchTokens: { arg: "<n>", help: "tokens generated per request", default: "64", parse: wholeNumber(2, 4096) },
    benchConcurrency: { arg: "<list>", help: "concurrent requester counts, comma-separated", default: "1,2,4", parse: text },
    llamaBench: {
      arg: "<file>",
      help: "also run llama.cpp's own llama-bench binary in every round, for the ratio to llama.cpp (README, Speed)",
      parse: text,
    },
    llamaBatchedBench: {
      arg: "<file>",
      help: "also run llama.cpp's llama-batched-bench in every round: the ceiling for concurrent requesters (README, Speed)",
      parse: text,
    },
    llamaCompletion: {
      arg: "<file>",
      help: "also answer the same text with llama.cpp's llama-completion (the old main), greedy and sampled, alternating with the agent (README, Speed)",
      parse: text,
    },
    completionPairs: { arg: "<n>", help: "agent / llama-completion pairs per sampling setting", default: "9", parse: wholeNumber(1, 100) },
  },
  help: "With --mqtt embedded (default) an in-process broker carries the MQTT run; --mqtt <url> uses that broker, --mqtt off skips it.\nExample:\n  instrument-agent bench --model ./models-data/synth-qwen2.5-0.5b-q8_0.gguf --threads auto --json",
  async run({ options, setUp }) {
    const { parseConcurrency, renderBench, runBench } = await import("../../diagnostics/bench/bench.js");
    const benchOptions = {
      runs: options.benchRuns,
      promptTokens: options.benchPrompt,
      genTokens: options.benchTokens,
      concurrency: parseConcurrency(options.benchConcurrency),
      llamaBench: options.llamaBench === undefined ? undefined : path.resolve(options.llamaBench),
      llamaBatchedBench: options.llamaBatchedBench === undefined ? undefined : path.resolve(options.llamaBatchedBench),
      llamaCompletion: options.llamaCompletion === undefined ? undefined : path.resolve(options.llamaCompletion),
      completionPairs: options.completionPairs,
    };
    const { config, logger } = setUp();
    const tty = process.stderr.isTTY;
    const started = performance.now();
    const progress = (step: string) =>
      process.stderr.write(tty ? `\r\x1b[K${step}` : `bench ${((performance.now() - started) / 1000).toFixed(1)} s: ${step}\n`);
    const report = await runBench({ config, logger, options: benchOptions, onStep: progress });
    if (tty) process.stderr.write("\r\x1b[K");
    process.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : renderBench(report));
    return EXIT_OK;
  },
};
