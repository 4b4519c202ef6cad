import { createInterface } from "node:readline";
import type { Interface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import type { AnswerService } from "../../service/answerService.js";
import { Conversation } from "../../service/conversation.js";
import type { Logger, TerminalLogGate } from "../../../common/logger.js";
import type { Transport } from "../transport.js";
import { answerQuestion, handleConsoleLine } from "../../console/consoleCommands.js";
import type { ConsoleHost, ConsolePort, Tone } from "../../console/consoleCommands.js";

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

/** What `/help` adds on this terminal after the shared command list. */
const HELP_NOTES = [
  "Ending the conversation quits, as do Ctrl-D and Ctrl-C twice at the prompt.",
  "Ctrl-C while an answer streams cancels it.",
];

/** SGR colours of the tones: dim for notices, yellow for a cancel, red for an error. */
const TONE_SGR: Record<Tone, string | undefined> = { plain: undefined, dim: "2", warn: "33", error: "31" };

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
  /** Whether the cursor is at the start of a line; an answer that streamed without a final newline leaves it mid-line. */
  #atLineStart = true;
  #finished: Promise<void>;
  #finish!: () => void;
  readonly #port: ConsolePort = {
    say: (text, tone = "plain") => {
      this.#endLine();
      const sgr = TONE_SGR[tone];
      this.#write(`${sgr ? this.#paint(text, sgr) : text}\n`);
    },
    stream: (text) => {
      if (text === "") return;
      this.#write(text);
      this.#atLineStart = text.endsWith("\n");
    },
    endLine: () => this.#endLine(),
  };
  readonly #host: ConsoleHost;

  constructor(options: LocalConsoleOptions) {
    this.#options = options;
    this.#interactive = Boolean(options.input.isTTY && options.output.isTTY);
    this.#finished = new Promise((resolve) => (this.#finish = resolve));
    this.#host = {
      port: this.#port,
      service: options.service,
      conversation: this.#conversation,
      logger: options.logger,
      transport: "console",
      scpi: options.scpi,
      helpNotes: HELP_NOTES,
      statusExtra: () => this.#peerLines(),
      // The person is done: `chat` (and `run`, when this console is its terminal) stops.
      endConversation: () => this.quit(),
      ask: (question) => this.#answer(question),
    };
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
    this.#write(`${[this.#options.banner, ...this.#peerLines()].join("\n")}\n`);
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
    if (!this.#interactive) this.#write(`> ${raw.trim()}\n`);
    await handleConsoleLine(this.#host, raw);
  }

  async #answer(question: string): Promise<void> {
    const controller = new AbortController();
    this.#current = controller;
    try {
      // Piped output stays the answers alone; a person at the terminal also sees the speed.
      await answerQuestion(this.#host, question, { signal: controller.signal, timings: this.#interactive });
    } finally {
      this.#current = undefined;
    }
  }

  #peerLines(): string[] {
    return (this.#options.peers ?? []).map((peer) => peer.summary).filter((line): line is string => line !== undefined);
  }

  #endLine(): void {
    if (!this.#atLineStart) this.#write("\n");
    this.#atLineStart = true;
  }

  #paint(text: string, sgr: string): string {
    return this.#options.color ? `\u001b[${sgr}m${text}\u001b[0m` : text;
  }

  #write(text: string): void {
    this.#options.output.write(text);
  }
}
