import type { AnswerService } from "../../service/answerService.js";
import { answerQuestion, handleConsoleLine } from "../../console/consoleCommands.js";
import type { ConsoleHost } from "../../console/consoleCommands.js";
import { Conversation } from "../../service/conversation.js";
import { within } from "../../../common/async.js";
import type { ErrorCode } from "../../../common/errors.js";
import { LineDiscipline } from "./lineDiscipline.js";
import type { LineEvent } from "./lineDiscipline.js";
import type { Logger } from "../../../common/logger.js";
import type { SerialLink } from "../../../common/serial/serialLink.js";
import { OutputPump } from "./outputPump.js";
import { PortKeeper } from "./portKeeper.js";
import { SerialOutput } from "./serialOutput.js";
import type { SerialCharset } from "./serialText.js";
import type { Transport } from "../transport.js";

export interface SerialConsoleOptions {
  /** The line; opened at start and reopened whenever it goes away. */
  link: SerialLink;
  service: AnswerService;
  logger: Logger;
  /** Shown when the port opens and after `/bye` (LF line ends are fine; they go out as CRLF). */
  banner: string;
  /** `ascii` for terminals that cannot show UTF-8. Defaults to `utf8`. */
  charset?: SerialCharset;
  /** Break answer lines at this many columns; 0 is off. Defaults to 0. */
  wrap?: number;
  /** Most characters in one typed line. Defaults to 1000. */
  lineLimit?: number;
  /** Read-only SCPI through the firmware bridge, for `/scpi <query>`. Defaults to none (the command says no instrument is configured). */
  scpi?: ((query: string) => Promise<string>) | undefined;
  /** How the line is set up, for `/status`, e.g. `/dev/ttyUSB0 9600 8N1 flow none`. Defaults to the path. */
  lineLabel?: string;
  /** First wait before reopening a port that is missing or went away, ms; doubles each try. Defaults to 500. */
  reopenFirstMs?: number;
  /** Longest wait between reopen tries, ms. Defaults to 10000. */
  reopenMaxMs?: number;
}

/** What `/help` adds on a serial terminal after the shared command list. */
const HELP_NOTES = [
  "Ending the conversation shows the banner for the next person, who starts afresh.",
  "Backspace or DEL erases a character, Ctrl-U the line, Ctrl-W a word.",
  "Ctrl-C cancels the answer in progress; what you type while an answer streams is ignored.",
];

/** How long a cancel waits for the chunk in flight before printing over it. */
export const IN_FLIGHT_WAIT_MS = 500;
/** How long `stop` waits for its goodbye line to go out. */
const STOP_DRAIN_MS = 1000;

interface Turn {
  controller: AbortController;
  cancelled: boolean;
}

/**
 * What the typed bytes mean now: `idle` at the prompt (they go to the line discipline),
 * `handling` a command (dropped), `answering` (only Ctrl-C counts: it cancels `turn`, and
 * typing would garble the answer), `cancelling` (dropped until the prompt is back).
 */
type InputState = { kind: "idle" } | { kind: "handling" } | { kind: "answering"; turn: Turn } | { kind: "cancelling" };

/**
 * The serial console: a person at a terminal (PuTTY, minicom, a VT100, an instrument's own
 * console) on RS-232 or USB-serial chats with the agent. Bytes go through a LineDiscipline;
 * lines go to the console command set shared with `chat`; output goes through an OutputPump
 * (small drained chunks, so a slow line holds at most one answer's text here and little in the
 * OS). A PortKeeper reopens the port with backoff when it is missing or goes away; the agent
 * keeps serving other transports meanwhile.
 */
export class SerialConsole implements Transport {
  readonly name = "serial";
  readonly #options: SerialConsoleOptions;
  readonly #link: SerialLink;
  readonly #log: Logger;
  readonly #conversation = new Conversation();
  readonly #keeper: PortKeeper;
  readonly #host: ConsoleHost;
  /** A new pump per open port. */
  #pump: OutputPump;
  #discipline: LineDiscipline;
  #output: SerialOutput;
  #input: InputState = { kind: "idle" };
  /** Bumped at each banner (port opened, `/bye`): work begun for an earlier person never prompts this one. */
  #person = 0;
  #toldAscii = false;

  constructor(options: SerialConsoleOptions) {
    this.#options = options;
    this.#link = options.link;
    this.#log = options.logger;
    this.#pump = new OutputPump(this.#link, this.#log);
    this.#discipline = this.#newDiscipline();
    this.#output = this.#newOutput();
    this.#keeper = new PortKeeper({
      link: options.link,
      logger: options.logger,
      lineLabel: options.lineLabel,
      firstMs: options.reopenFirstMs ?? 500,
      maxMs: options.reopenMaxMs ?? 10_000,
      onOpen: () => this.#opened(),
      onData: (bytes) => this.#onData(bytes),
      onLost: () => this.#lost(),
    });
    this.#host = {
      port: {
        say: (text) => this.#say(text),
        stream: (text) => this.#pump.send(this.#output.format(text)),
        endLine: () => this.#pump.send(this.#output.endLine()),
      },
      service: options.service,
      conversation: this.#conversation,
      logger: options.logger,
      transport: "serial",
      scpi: options.scpi,
      helpNotes: HELP_NOTES,
      statusExtra: () => [
        `line     ${options.lineLabel ?? this.#link.path}, ${options.charset ?? "utf8"}, wrap ${options.wrap ? `${options.wrap} columns` : "off"}, line limit ${options.lineLimit ?? 1000}`,
      ],
      // The port stays served: the next person gets the banner and an empty conversation.
      endConversation: () => {
        this.#conversation.reset();
        this.#say("(conversation ended; goodbye)\n");
        this.#freshSession();
      },
      ask: (question) => this.#answer(question),
    };
  }

  /** Opens the port; a port that is not there yet is logged and retried, not fatal. */
  async start(): Promise<void> {
    await this.#keeper.start();
  }

  async stop(): Promise<void> {
    if (this.#keeper.state === "stopped") return;
    const wasOpen = this.#keeper.state === "open" && this.#link.isOpen;
    this.#abortTurn();
    if (wasOpen) {
      this.#pump.dropQueued();
      this.#pump.send(`${this.#output.endLine()}(the agent is stopping)\r\n`);
      await within(this.#pump.drained(), STOP_DRAIN_MS);
    }
    this.#pump.close();
    await this.#keeper.stop();
  }

  #opened(): void {
    this.#pump.close();
    this.#pump = new OutputPump(this.#link, this.#log);
    this.#freshSession();
  }

  /** The port went away: the answer in progress stops; the conversation is kept for when it is back. */
  #lost(): void {
    this.#abortTurn();
    this.#pump.close();
  }

  /** The banner and a prompt, with a clean line discipline: after opening and after `/bye`. */
  #freshSession(): void {
    this.#person += 1;
    this.#discipline = this.#newDiscipline();
    this.#output = this.#newOutput();
    this.#toldAscii = false;
    this.#input = { kind: "idle" };
    const charset = this.#options.charset === "ascii" ? "ASCII" : "UTF-8";
    this.#say(`${this.#options.banner}\nSerial console: ${charset}; type a question and press Enter.`);
    this.#prompt();
  }

  #onData(bytes: Buffer): void {
    const input = this.#input;
    if (input.kind === "answering" && bytes.includes(0x03)) void this.#cancel(input.turn);
    if (input.kind !== "idle") return;
    let events: LineEvent[];
    try {
      events = this.#discipline.feed(bytes);
    } catch (error) {
      this.#log.error({ err: error }, "line discipline failed; line discarded");
      this.#discipline.clearLine();
      return;
    }
    for (const event of events) {
      if (event.kind === "echo") {
        this.#pump.send(event.text);
        if (event.text.endsWith("\n")) this.#output.atLineStart();
        continue;
      }
      if (event.kind === "interrupt") {
        this.#pump.send(`^C${this.#output.endLine() || "\r\n"}`);
        this.#output.atLineStart();
        this.#prompt();
        continue;
      }
      // Input after an Enter is dropped until the line is handled, as it is while an answer streams.
      this.#input = { kind: "handling" };
      const person = this.#person;
      void this.#submit(event).finally(() => this.#backToPrompt(person));
      return;
    }
  }

  async #submit(event: Exclude<LineEvent, { kind: "echo" | "interrupt" }>): Promise<void> {
    if (event.kind === "refused") {
      const code: ErrorCode = event.reason === "too-long" ? "IA_ERR_SERIAL_LINE_TOO_LONG" : "IA_ERR_SERIAL_INPUT";
      this.#say(`error ${code}: ${event.detail}; the line was not sent`);
      return;
    }
    await handleConsoleLine(this.#host, event.text);
  }

  /** After a line was handled: the prompt again, unless a cancel or a fresh session already gave one. */
  #backToPrompt(person: number): void {
    if (person !== this.#person || this.#input.kind !== "handling") return;
    this.#input = { kind: "idle" };
    this.#discipline.clearLine();
    this.#prompt();
  }

  async #answer(question: string): Promise<void> {
    const turn: Turn = { controller: new AbortController(), cancelled: false };
    this.#input = { kind: "answering", turn };
    const live = () => !turn.cancelled;
    try {
      await answerQuestion(this.#host, question, { signal: turn.controller.signal, live, timings: true });
      if (!live()) return;
      if (this.#output.takeReplaced() && !this.#toldAscii) {
        this.#toldAscii = true;
        this.#say("(characters this ASCII terminal cannot show were replaced by ?; --serial-charset utf8 shows them)");
      }
      // On a slow line the answer is over only once the line has carried it: Ctrl-C still cancels until then.
      await this.#pump.drained();
    } finally {
      if (this.#input.kind === "answering" && this.#input.turn === turn) this.#input = { kind: "handling" };
    }
  }

  /**
   * Ctrl-C during an answer: stop generating, drop what is waiting to go out (here and in
   * the OS), then say so and prompt, without waiting for the backlog to drain.
   */
  async #cancel(turn: Turn): Promise<void> {
    this.#input = { kind: "cancelling" };
    this.#abortTurn(turn);
    const pump = this.#pump;
    await pump.discardBacklog(IN_FLIGHT_WAIT_MS);
    // The port went away (or came back as a new session) meanwhile: nothing to finish here.
    if (pump !== this.#pump || this.#input.kind !== "cancelling") return;
    this.#discipline.clearLine();
    this.#pump.send(`${this.#output.endLine()}^C\r\n`);
    this.#output.atLineStart();
    this.#say("(answer cancelled)");
    this.#input = { kind: "idle" };
    this.#prompt();
  }

  /** Stops the answer in progress (or `turn`) at once; it writes nothing more. */
  #abortTurn(turn = this.#input.kind === "answering" ? this.#input.turn : undefined): void {
    if (!turn || turn.cancelled) return;
    turn.cancelled = true;
    turn.controller.abort();
    this.#pump.dropQueued();
  }

  /** A message on lines of its own. */
  #say(text: string): void {
    this.#pump.send(this.#output.endLine() + this.#output.format(`${text}\n`));
  }

  #prompt(): void {
    this.#pump.send(`${this.#output.endLine()}> `);
    this.#output.atLineStart();
  }

  #newDiscipline(): LineDiscipline {
    return new LineDiscipline({ maxChars: this.#options.lineLimit ?? 1000, charset: this.#options.charset ?? "utf8" });
  }

  #newOutput(): SerialOutput {
    return new SerialOutput({ charset: this.#options.charset ?? "utf8", wrap: this.#options.wrap ?? 0 });
  }
}
