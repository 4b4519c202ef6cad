import { readFileSync } from "node:fs";
import { AgentError, EXIT_OK, EXIT_RUNTIME } from "../../../common/errors.js";
import { settingsIn } from "../../config/settings.js";
import { DEMO_NOTICE, toolCallLine } from "../../console/consoleText.js";
import type { CommandSpec } from "../commandSpec.js";
import { given, seconds, text } from "../commandOption.js";
import { loadAgentUnlessStopped, onSignals } from "../context.js";

/** `ask`: one question, the answer on stdout, from a model loaded here or a remote agent (`--via`). */

interface AskOptions {
  raw: boolean;
  via: string | undefined;
  timeout: number;
}

function readQuestion(words: string[]): string {
  const question = words.join(" ");
  if (question !== "-") return question;
  return readFileSync(0, "utf8").trim();
}

export const askCommand: CommandSpec<AskOptions> = {
  name: "ask",
  description: "answer one question on stdout and exit (`-` reads the question from stdin)",
  arguments: [{ syntax: "<text...>", help: "the question" }],
  // The broker settings are those of `--via`: the login, and the topics of the agent asked.
  settings: [...settingsIn("model", "host", "generation", "broker", "instrument"), "agentId", "fleet", "mqttPrefix", "json"],
  defaults: { logLevel: "warn" },
  options: {
    raw: { help: "complete the text as is, without the chat template", parse: given },
    via: {
      arg: "<url>",
      help: "ask the agent --agent-id (or the --fleet group) through this broker instead of loading a model, e.g. mqtt://lab-broker:1883",
      parse: text,
    },
    timeout: { arg: "<s>", help: "with --via: longest wait for the answer to start or go on", default: "120", parse: seconds },
  },
  help: 'Examples:\n  instrument-agent ask --model demo --temperature 0 --max-tokens 16 "你好"\n  instrument-agent ask --via mqtt://127.0.0.1:1883 --agent-id analyzer-1 "What is RBW?"',
  async run({ args, options, flags, setUp }) {
    const { raw } = options;
    const context = setUp();
    const { config, logger } = context;
    const question = readQuestion(args);
    if (question === "") throw new AgentError("IA_ERR_USAGE", "ask: the question is empty");
    if (options.via !== undefined) {
      const { askVia } = await import("../../transports/mqtt/askVia.js");
      return askVia({ url: options.via, question, raw, timeout: options.timeout, flags, config, logger });
    }
    const agent = await loadAgentUnlessStopped(context);
    if (!agent) {
      process.stderr.write("(answer cancelled)\n");
      return EXIT_RUNTIME;
    }
    if (agent.runtime.info.isDemo && !config.json) process.stderr.write(`${DEMO_NOTICE}\n`);
    const controller = new AbortController();
    const removeSignals = onSignals(() => controller.abort());
    try {
      const result = await agent.service.answer(
        raw ? { mode: "raw", prompt: question } : { messages: [{ role: "user", content: question }] },
        {
          signal: controller.signal,
          transport: "cli",
          onDelta: config.json ? undefined : (delta) => process.stdout.write(delta),
          onToolCall: config.json ? undefined : (record) => process.stderr.write(`${toolCallLine(record)}\n`),
        },
      );
      if (config.json) {
        const { modelLabel: model, isDemo: demo } = agent.runtime.info;
        const { text: answer, finishReason, usage, timings, context: liveContext, tools, toolLimitReached } = result;
        const grounding = { ...(liveContext === undefined ? {} : { context: liveContext }), ...(tools === undefined ? {} : { tools }) };
        const limit = toolLimitReached ? { toolLimitReached } : {};
        process.stdout.write(`${JSON.stringify({ model, demo, text: answer, finishReason, usage, timings, ...grounding, ...limit })}\n`);
      } else if (!result.text.endsWith("\n")) {
        process.stdout.write("\n");
      }
      if (agent.instrument && !raw && agent.instrument.context.lastReadable === false) {
        process.stderr.write(
          `note: the instrument at ${agent.instrument.description} could not be read; the answer does not use its live settings\n`,
        );
      }
      if (result.finishReason === "cancelled") {
        process.stderr.write("(answer cancelled)\n");
        return EXIT_RUNTIME;
      }
      return EXIT_OK;
    } finally {
      removeSignals();
      await agent.instrument?.close();
      await agent.runtime.dispose();
    }
  },
};
