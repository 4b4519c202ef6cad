import type { AnswerService } from "../service/answerService.js";
import type { Conversation } from "../service/conversation.js";
import { toAgentError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { scpiCommandReply, toolCallLine } from "./consoleText.js";

/**
 * The console command set, written once for `chat` (readline on this terminal) and the serial
 * console. Each console supplies a {@link ConsoleHost}: how to write (its {@link ConsolePort}),
 * what ending the conversation means there, how a question runs (cancel, backpressure) and the
 * lines only it has. Matching, help, `/status` and the answer's closing lines live here, so the
 * two cannot drift apart again.
 */

/** How a message should look: `chat` paints it on a colour terminal, the serial console sends it plain. */
export type Tone = "plain" | "dim" | "warn" | "error";

/** Where the shared commands write; each console maps it onto its medium (readline, CRLF and wrapping). */
export interface ConsolePort {
  /** A message on lines of its own: ends any line a streamed answer left open first. */
  say(text: string, tone?: Tone): void;
  /** A piece of a streamed answer, as generated. */
  stream(text: string): void;
  /** Ends the line a streamed answer left the cursor on, if any. */
  endLine(): void;
}

/** What a console gives the shared commands. */
export interface ConsoleHost {
  readonly port: ConsolePort;
  readonly service: AnswerService;
  readonly conversation: Conversation;
  readonly logger: Logger;
  /** Which console this is: the `transport` label of its answers in the metrics. */
  readonly transport: "console" | "serial";
  /** Read-only SCPI through the firmware bridge; undefined when no instrument is configured. */
  readonly scpi?: ((query: string) => Promise<string>) | undefined;
  /** Lines `/help` adds after the command list: the keys of this medium, what ending means here. */
  readonly helpNotes: readonly string[];
  /** Lines `/status` adds after the shared ones: the serial line settings, the other transports of `run`. */
  statusExtra(): string[];
  /** `/bye` and `stop`: `chat` quits; the serial console forgets the conversation and greets the next person. */
  endConversation(): void;
  /** A question for the model; the console runs the turn (cancel, backpressure) around {@link answerQuestion}. */
  ask(question: string): Promise<void>;
}

export interface ConsoleCommand {
  /** The slash word, e.g. `/reset`: matched on the first word of the line, case-insensitive. */
  readonly name: string;
  /** Bare words that mean the same, e.g. `restart`: they count only as the whole line, so a question may start with them. */
  readonly aliases: readonly string[];
  /** Shown after the name in `/help`, e.g. `<query>`. */
  readonly usage?: string;
  /** The `/help` line. */
  readonly help: string;
  /** `argument` is the rest of the line after the slash word, trimmed. */
  run(host: ConsoleHost, argument: string): void | Promise<void>;
}

export const CONSOLE_COMMANDS: readonly ConsoleCommand[] = [
  {
    name: "/help",
    aliases: [],
    help: "this text",
    run: (host) => host.port.say(helpText(host.helpNotes)),
  },
  {
    name: "/reset",
    aliases: ["restart"],
    help: "forget the conversation so far",
    run: (host) => {
      host.conversation.reset();
      host.port.say("(conversation cleared)", "dim");
    },
  },
  {
    name: "/status",
    aliases: [],
    help: "model, threads, mlock, speed of the last answer, queue, history",
    run: (host) => host.port.say(statusLines(host).join("\n")),
  },
  {
    name: "/scpi",
    aliases: [],
    usage: "<query>",
    help: "send a read-only SCPI query to the instrument (e.g. /scpi *IDN?)",
    run: async (host, query) => {
      const reply = await scpiCommandReply(host.scpi, query);
      host.port.say(reply.text, reply.failed ? "error" : "plain");
    },
  },
  {
    name: "/bye",
    aliases: ["stop"],
    help: "end the conversation",
    run: (host) => host.endConversation(),
  },
];

/** What a typed line is. */
export type ConsoleLine =
  | { kind: "empty" }
  | { kind: "command"; command: ConsoleCommand; argument: string }
  | { kind: "unknown"; word: string }
  | { kind: "question"; text: string };

/**
 * Slash commands by their first word, case-insensitive (`/help me` is `/help`, `/scpi *IDN?` passes
 * `*IDN?`); bare-word aliases only as the whole line (`stop frequency?` is a question).
 */
export function parseConsoleLine(raw: string): ConsoleLine {
  const line = raw.trim();
  if (line === "") return { kind: "empty" };
  if (line.startsWith("/")) {
    const word = line.split(/\s/, 1)[0]!;
    const command = CONSOLE_COMMANDS.find((candidate) => candidate.name === word.toLowerCase());
    if (!command) return { kind: "unknown", word };
    return { kind: "command", command, argument: line.slice(word.length).trim() };
  }
  const bare = line.toLowerCase();
  const aliased = CONSOLE_COMMANDS.find((candidate) => candidate.aliases.includes(bare));
  if (aliased) return { kind: "command", command: aliased, argument: "" };
  return { kind: "question", text: line };
}

/** Runs one typed line: a command, a refusal of an unknown one, or a question. Never throws. */
export async function handleConsoleLine(host: ConsoleHost, raw: string): Promise<void> {
  const parsed = parseConsoleLine(raw);
  try {
    switch (parsed.kind) {
      case "empty":
        return;
      case "unknown":
        host.port.say(`unknown command ${parsed.word}; /help lists the commands`);
        return;
      case "command":
        await parsed.command.run(host, parsed.argument);
        return;
      case "question":
        await host.ask(parsed.text);
        return;
    }
  } catch (error) {
    host.logger.error({ err: error }, "console command failed");
    const agentError = toAgentError(error);
    host.port.say(`error ${agentError.code}: ${agentError.message}`, "error");
  }
}

/** The `/help` text: the command table, then the medium's own notes. */
export function helpText(notes: readonly string[]): string {
  const commands = CONSOLE_COMMANDS.map((command) => {
    const names = [command.usage ? `${command.name} ${command.usage}` : command.name, ...command.aliases].join(", ");
    return `  ${names.padEnd(17)}${command.help}`;
  });
  return ["Type a question and press Enter; the answer streams as it is generated.", ...commands, ...notes].join("\n");
}

/** The `/status` lines both consoles show, then the console's own. */
export function statusLines(host: ConsoleHost): string[] {
  const info = host.service.runtime.info;
  const stats = host.service.stats;
  const queue = host.service.queue;
  const mlock = info.mlock.locked ? "locked" : info.mlock.requested ? "requested but NOT locked" : "off";
  return [
    `model    ${info.modelLabel}${info.isDemo ? " (demo: scripted, no knowledge)" : ""}`,
    `threads  ${info.threads}   context ${info.contextSize} tokens   parallel ${info.parallelSequences}`,
    `mlock    ${mlock} (${info.mlock.detail})`,
    `speed    ${stats.lastTokensPerSecond} tokens/s, first token ${Math.round(stats.lastTtftMs)} ms (last answer)`,
    `queue    ${queue.running} answering, ${queue.waiting} waiting`,
    `history  ${host.conversation.messages.length} messages`,
    ...host.statusExtra(),
  ];
}

export interface AnswerTurn {
  signal: AbortSignal;
  /**
   * False once the console has taken the turn back (the serial console prints its own cancel
   * notice at once, while generation may still be winding down); nothing more is written then.
   * Defaults to always true.
   */
  live?: () => boolean;
  /** Whether to close with the `[N tokens, ...]` line (`chat` leaves it out of piped output). */
  timings: boolean;
}

/** Asks the model within the conversation, streams the answer to the port, and closes it the same way on both consoles. */
export async function answerQuestion(host: ConsoleHost, question: string, turn: AnswerTurn): Promise<void> {
  const live = turn.live ?? (() => true);
  const { port } = host;
  try {
    const result = await host.conversation.ask(host.service, question, {
      signal: turn.signal,
      transport: host.transport,
      onDelta: (text) => {
        if (live()) port.stream(text);
      },
      onQueued: (position) => {
        if (live()) port.say(`(waiting: the model is answering someone else; you are number ${position} in line)`, "dim");
      },
      onToolCall: (record) => {
        if (!live()) return;
        port.endLine();
        port.say(toolCallLine(record), record.error === undefined ? "dim" : "warn");
      },
    });
    if (!live()) return;
    port.endLine();
    if (result.finishReason === "cancelled") port.say("(answer cancelled)", "warn");
    else if (turn.timings) {
      const t = result.timings;
      port.say(`[${result.usage.completionTokens} tokens, ${t.tokensPerSecond} tokens/s, first token ${Math.round(t.ttftMs)} ms]`, "dim");
    }
  } catch (error) {
    if (!live()) return;
    const agentError = toAgentError(error);
    port.endLine();
    if (agentError.code === "IA_ERR_CANCELLED") port.say("(answer cancelled)", "warn");
    else {
      if (agentError.code === "IA_ERR_INTERNAL") host.logger.error({ err: error }, "answer failed");
      port.say(`error ${agentError.code}: ${agentError.message}`, "error");
    }
  }
}
