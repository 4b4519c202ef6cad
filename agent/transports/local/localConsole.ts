import { createInterface } from "node:readline";
import type { Interface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import type { AnswerService } from "../../service/answerService.js";
import { Conversation } from "../../service/conversation.js";
import { toAgentError } from "../../../common/errors.js";
import type { Logger, TerminalLogGate } from "../../../common/logger.js";
import type { Transport } from "../transport.js";
import { scpiCommandReply } from "../../console/consoleText.js";

export interface LocalConsoleOptions {
  input: Readable & { isTTY?: boolean };
  output: Writable & { isTTY?: boolean };
  service: AnswerService;
  logger: Logger;
  /** Colour escapes; only sensible on a TTY. Defaults to off. */
  color?: boolean;
  /** Printed once at start. */
  banner: string;
  /** Read-only SCPI through the firmware bridge, for `/scpi <query>`. Defaults to none (the command says no instrument is configured). */
  scpi?: ((query: string) => Promise<string>) | undefined;
  /** The other transports of `run`: their state goes into the banner and `/status`. Defaults to none. */
  peers?: readonly Transport[] | undefined;
  /** Log lines that share this terminal; the console prints them only between answers. Defaults to none. */
  logGate?: TerminalLogGate | undefined;
}

const HELP = [
  "Type a question and press Enter; the answer streams as it is generated.",
  "  /help            this text",
  "  /reset, restart  forget the conversation so far",
  "  /status          model, threads, mlock, speed of the last answer",
  "  /scpi <query>    send a read-only SCPI query to the instrument (e.g. /scpi :FREQ:CENT?)",
  "  /bye, stop       quit (also Ctrl-D; Ctrl-C twice at the prompt)",
  "Ctrl-C while an answer streams cancels it.",
].join("\n");

/** How long a first Ctrl-C at an idle prompt waits for a second one to quit. */
const DOUBLE_INTERRUPT_MS = 2000;

/**
 * The `chat` console on this process's own terminal, in the manner of `llama-cli -i`.
 * Lines are handled one at a time in the order typed (or piped), so piped input behaves
 * like a person typing each line after the previous answer.
 */
export class LocalConsole implements Transport {
  readonly name = "console";
  readonly #options: LocalConsoleOptions;
  readonly #conversation = new Conversation();
  readonly #pending: string[] = [];
  readonly #interactive: boolean;
  #readline: Interface | undefined;
  #current: AbortController | undefined;
  #busy = false;
  #inputEnded = false;
  #quitting = false;
  #lastIdleInterrupt = 0;
  /** Log lines that arrived while an answer was streaming, printed after it. */
  #heldLog: string[] = [];
  #finished: Promise<void>;
  #finish!: () => void;

  constructor(options: LocalConsoleOptions) {
    this.#options = options;
    this.#interactive = Boolean(options.input.isTTY && options.output.isTTY);
    this.#finished = new Promise((resolve) => (this.#finish = resolve));
  }

  /** Resolves when the person quits or input ends. */
  get ended(): Promise<void> {
    return this.#finished;
  }

  async start(): Promise<void> {
    void this.run();
  }

  async stop(): Promise<void> {
    this.quit();
    await this.#finished;
  }

  /** Runs until the person quits or input ends; resolves then. */
  async run(): Promise<void> {
    const { input, output } = this.#options;
    const peerLines = (this.#options.peers ?? []).map((peer) => peer.summary).filter((line): line is string => line !== undefined);
    this.#write(`${[this.#options.banner, ...peerLines].join("\n")}\n`);
    const readline = createInterface({ input, output, terminal: this.#interactive, prompt: this.#paint("> ", "1;32"), historySize: 200 });
    this.#readline = readline;
    readline.on("line", (line) => {
      this.#pending.push(line);
      void this.#pump();
    });
    readline.on("close", () => {
      this.#inputEnded = true;
      void this.#pump();
    });
    readline.on("SIGINT", () => this.interrupt());
    if (this.#interactive) {
      this.#options.logGate?.route((text) => this.#logAside(text));
      readline.prompt();
    }
    try {
      await this.#finished;
    } finally {
      this.#options.logGate?.route(undefined);
      this.#flushHeldLog();
    }
  }

  /** A log line for this terminal: held while an answer streams, else printed above the prompt. */
  #logAside(text: string): void {
    if (this.#busy) {
      this.#heldLog.push(text);
      return;
    }
    // Clear the prompt line, print the log line, draw the prompt again with what was typed.
    this.#write(`\r\u001b[K${this.#paint(text.replace(/\n$/, ""), "2")}\n`);
    this.#readline?.prompt(true);
  }

  #flushHeldLog(): void {
    const held = this.#heldLog.splice(0);
    for (const text of held) this.#write(this.#paint(text.replace(/\n$/, ""), "2") + "\n");
  }

  /** Ctrl-C: cancel the answer in progress, or quit on a second press at an idle prompt. */
  interrupt(): void {
    if (this.#current) {
      this.#current.abort();
      return;
    }
    const now = Date.now();
    if (now - this.#lastIdleInterrupt < DOUBLE_INTERRUPT_MS || !this.#interactive) {
      this.quit();
      return;
    }
    this.#lastIdleInterrupt = now;
    this.#write(`\n${this.#paint("(Ctrl-C again, /bye or Ctrl-D to quit)", "2")}\n`);
    this.#readline?.prompt();
  }

  /** Stops after the answer in progress, if any, is cancelled. */
  quit(): void {
    if (this.#quitting) return;
    this.#quitting = true;
    this.#current?.abort();
    this.#readline?.close();
    if (!this.#busy) this.#finish();
  }

  async #pump(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (!this.#quitting && this.#pending.length > 0) {
        const line = this.#pending.shift() ?? "";
        await this.#handle(line);
        this.#flushHeldLog();
        if (this.#interactive && !this.#quitting) this.#readline?.prompt();
      }
    } finally {
      this.#busy = false;
    }
    if (this.#quitting || (this.#inputEnded && this.#pending.length === 0)) {
      this.#quitting = true;
      this.#finish();
    }
  }

  async #handle(raw: string): Promise<void> {
    const line = raw.trim();
    if (!this.#interactive) this.#write(`> ${line}\n`);
    if (line === "") return;
    switch (line.toLowerCase()) {
      case "/help":
        this.#write(`${HELP}\n`);
        return;
      case "/reset":
      case "restart":
        this.#conversation.reset();
        this.#write(`${this.#paint("(conversation cleared)", "2")}\n`);
        return;
      case "/status":
        this.#write(`${this.#status()}\n`);
        return;
      case "/bye":
      case "stop":
        this.quit();
        return;
    }
    if (/^\/scpi(\s|$)/i.test(line)) {
      await this.#scpi(line.slice(5).trim());
      return;
    }
    if (line.startsWith("/")) {
      this.#write(`unknown command ${line.split(/\s/)[0]}; /help lists the commands\n`);
      return;
    }
    await this.#answer(line);
  }

  async #answer(question: string): Promise<void> {
    const controller = new AbortController();
    this.#current = controller;
    let wroteAny = false;
    try {
      const result = await this.#conversation.ask(this.#options.service, question, {
        signal: controller.signal,
        onDelta: (text) => {
          wroteAny = true;
          this.#write(text);
        },
        onQueued: (position) =>
          this.#write(this.#paint(`(waiting: the model is answering someone else; you are number ${position} in line)\n`, "2")),
      });
      if (wroteAny && !result.text.endsWith("\n")) this.#write("\n");
      if (result.finishReason === "cancelled") this.#write(`${this.#paint("(answer cancelled)", "33")}\n`);
      else if (this.#interactive) {
        const t = result.timings;
        this.#write(
          `${this.#paint(`[${result.usage.completionTokens} tokens, ${t.tokensPerSecond} tokens/s, first token ${Math.round(t.ttftMs)} ms]`, "2")}\n`,
        );
      }
    } catch (error) {
      const agentError = toAgentError(error);
      if (wroteAny) this.#write("\n");
      if (agentError.code === "IA_ERR_CANCELLED") this.#write(`${this.#paint("(answer cancelled)", "33")}\n`);
      else {
        this.#write(`${this.#paint(`error ${agentError.code}: ${agentError.message}`, "31")}\n`);
        if (agentError.code === "IA_ERR_INTERNAL") this.#options.logger.error({ err: error }, "answer failed");
      }
    } finally {
      this.#current = undefined;
    }
  }

  async #scpi(query: string): Promise<void> {
    const reply = await scpiCommandReply(this.#options.scpi, query);
    this.#write(`${reply.failed ? this.#paint(reply.text, "31") : reply.text}\n`);
  }

  #status(): string {
    const info = this.#options.service.runtime.info;
    const stats = this.#options.service.stats;
    return [
      `model    ${info.modelLabel}${info.isDemo ? " (demo: random weights, random answers)" : ""}`,
      `threads  ${info.threads}   context ${info.contextSize} tokens   parallel ${info.parallelSequences}`,
      `mlock    ${info.mlock.locked ? "locked" : info.mlock.requested ? "requested but NOT locked" : "off"} (${info.mlock.detail})`,
      `speed    ${stats.lastTokensPerSecond} tokens/s, first token ${Math.round(stats.lastTtftMs)} ms (last answer)`,
      `history  ${this.#conversation.messages.length} messages`,
      ...(this.#options.peers ?? []).map((peer) => peer.summary).filter((line): line is string => line !== undefined),
    ].join("\n");
  }

  #paint(text: string, sgr: string): string {
    return this.#options.color ? `\u001b[${sgr}m${text}\u001b[0m` : text;
  }

  #write(text: string): void {
    this.#options.output.write(text);
  }
}
