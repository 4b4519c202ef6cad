import type { AnswerService } from "../../service/answerService.js";
import { scpiCommandReply } from "../../console/consoleText.js";
import { Conversation } from "../../service/conversation.js";
import { AgentError, toAgentError } from "../../../common/errors.js";
import type { ErrorCode } from "../../../common/errors.js";
import { LineDiscipline } from "./lineDiscipline.js";
import type { LineEvent } from "./lineDiscipline.js";
import type { Logger } from "../../../common/logger.js";
import type { SerialLink } from "../../../common/serial/serialLink.js";
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

const HELP = [
  "Type a question and press Enter; the answer streams as it is generated.",
  "  /help            this text",
  "  /reset, restart  forget the conversation so far",
  "  /status          model, threads, mlock, speed of the last answer, this line",
  "  /scpi <query>    send a read-only SCPI query to the instrument (e.g. /scpi *IDN?)",
  "  /bye             end the conversation (the next person starts afresh)",
  "Backspace or DEL erases a character, Ctrl-U the line, Ctrl-W a word.",
  "Ctrl-C cancels the answer in progress; what you type while an answer streams is ignored.",
].join("\n");

/** Bytes per write: small, so a cancel at 9600 baud leaves little already in flight (about 0.1 s). */
const WRITE_CHUNK = 128;
/** How long a cancel waits for the chunk in flight before printing over it. */
const IN_FLIGHT_WAIT_MS = 500;

interface Turn {
  controller: AbortController;
  cancelled: boolean;
}

/**
 * The serial console: a person at a terminal (PuTTY, minicom, a VT100, an instrument's own
 * console) on RS-232 or USB-serial chats with the agent. Bytes go through a LineDiscipline;
 * output goes out one small chunk at a time, each awaited until drained, so a slow line
 * holds at most one answer's text here and little in the OS. The port is reopened with
 * backoff when it is missing or goes away; the agent keeps serving other transports.
 */
export class SerialConsole implements Transport {
  readonly name = "serial";
  readonly #options: SerialConsoleOptions;
  readonly #link: SerialLink;
  readonly #log: Logger;
  readonly #conversation = new Conversation();
  #discipline: LineDiscipline;
  #output: SerialOutput;
  #pending: Buffer[] = [];
  #pumping = false;
  /** Bumped at each open: a write stuck on a vanished port must not hold up the reopened one. */
  #epoch = 0;
  #inFlight: Promise<void> | undefined;
  #turn: Turn | undefined;
  #busy = false;
  #cancelling = false;
  #stopped = true;
  #toldAscii = false;
  #reopenTimer: NodeJS.Timeout | undefined;
  #reopenMs: number;
  #lastOpenError: string | undefined;

  constructor(options: SerialConsoleOptions) {
    this.#options = options;
    this.#link = options.link;
    this.#log = options.logger;
    this.#discipline = this.#newDiscipline();
    this.#output = this.#newOutput();
    this.#reopenMs = options.reopenFirstMs ?? 500;
  }

  /** Opens the port; a port that is not there yet is logged and retried, not fatal. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#open();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#reopenTimer);
    this.#turn?.controller.abort();
    this.#turn = undefined;
    if (this.#link.isOpen) {
      this.#pending = [];
      this.#send(`${this.#output.endLine()}(the agent is stopping)\r\n`);
      await Promise.race([this.#drained(), sleep(1000)]);
    }
    await this.#link.close();
  }

  async #open(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#link.open({
        onData: (bytes) => this.#onData(bytes),
        onClose: ({ disconnected, error }) => this.#onClose(disconnected, error),
        onError: (error) => this.#log.warn({ err: error, path: this.#link.path }, "serial port error"),
      });
    } catch (error) {
      const message = (error as Error).message;
      const agentError = new AgentError(
        "IA_ERR_SERIAL_PORT",
        `serial port ${this.#link.path} cannot be opened (${message}); the agent keeps serving and retries (backoff up to ${(this.#options.reopenMaxMs ?? 10_000) / 1000} s) until it appears`,
        { cause: error },
      );
      // Said once per kind of failure; the retries themselves go to debug.
      if (message !== this.#lastOpenError) this.#log.warn({ err: agentError, path: this.#link.path }, agentError.message);
      else this.#log.debug({ path: this.#link.path, retryMs: this.#reopenMs }, "serial port still cannot be opened");
      this.#lastOpenError = message;
      this.#scheduleReopen();
      return;
    }
    if (this.#stopped) {
      await this.#link.close();
      return;
    }
    this.#log.info(
      { path: this.#link.path, line: this.#options.lineLabel },
      this.#lastOpenError ? "serial port is back; console open" : "serial console open",
    );
    this.#lastOpenError = undefined;
    this.#reopenMs = this.#options.reopenFirstMs ?? 500;
    this.#epoch += 1;
    this.#pumping = false;
    this.#pending = [];
    this.#freshSession();
  }

  #scheduleReopen(): void {
    if (this.#stopped) return;
    clearTimeout(this.#reopenTimer);
    const wait = this.#reopenMs;
    this.#reopenMs = Math.min(wait * 2, this.#options.reopenMaxMs ?? 10_000);
    // Not unref'd: a missing port is a transport that is still being served.
    this.#reopenTimer = setTimeout(() => void this.#open(), wait);
  }

  #onClose(disconnected: boolean, error: Error | undefined): void {
    this.#abortTurn();
    this.#pending = [];
    if (this.#stopped) return;
    this.#lastOpenError = "went away";
    this.#log.warn(
      { path: this.#link.path, disconnected, err: error },
      `serial port ${this.#link.path} went away; reopening when it comes back`,
    );
    this.#reopenMs = this.#options.reopenFirstMs ?? 500;
    this.#scheduleReopen();
  }

  /** The banner and a prompt, with a clean line discipline: after opening and after `/bye`. */
  #freshSession(): void {
    this.#discipline = this.#newDiscipline();
    this.#output = this.#newOutput();
    this.#toldAscii = false;
    this.#busy = false;
    this.#say(
      `${this.#options.banner}\nSerial console: ${this.#options.charset === "ascii" ? "ASCII" : "UTF-8"}; type a question and press Enter.`,
    );
    this.#prompt();
  }

  #onData(bytes: Buffer): void {
    if (this.#busy) {
      // While an answer streams only Ctrl-C means anything; typing would garble the answer.
      if (bytes.includes(0x03)) void this.#cancel();
      return;
    }
    let events: LineEvent[];
    try {
      events = this.#discipline.feed(bytes);
    } catch (error) {
      this.#log.error({ err: error }, "line discipline failed; line discarded");
      this.#discipline.clearLine();
      return;
    }
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      if (event.kind === "echo") {
        this.#send(event.text);
        if (event.text.endsWith("\n")) this.#output.atLineStart();
        continue;
      }
      if (event.kind === "interrupt") {
        this.#send(`^C${this.#output.endLine() || "\r\n"}`);
        this.#output.atLineStart();
        this.#prompt();
        continue;
      }
      // Input after an Enter that starts an answer is dropped, as it is while the answer streams.
      this.#busy = true;
      void this.#submit(event).finally(() => {
        if (this.#busy && !this.#turn && !this.#cancelling) {
          this.#busy = false;
          this.#discipline.clearLine();
          this.#prompt();
        }
      });
      return;
    }
  }

  async #submit(event: Exclude<LineEvent, { kind: "echo" | "interrupt" }>): Promise<void> {
    try {
      if (event.kind === "refused") {
        const code: ErrorCode = event.reason === "too-long" ? "IA_ERR_SERIAL_LINE_TOO_LONG" : "IA_ERR_SERIAL_INPUT";
        this.#say(`error ${code}: ${event.detail}; the line was not sent`);
        return;
      }
      await this.#command(event.text.trim());
    } catch (error) {
      this.#log.error({ err: error }, "serial console command failed");
      this.#say(`error ${toAgentError(error).code}: ${toAgentError(error).message}`);
    }
  }

  async #command(line: string): Promise<void> {
    if (line === "") return;
    const word = line.split(/\s/)[0]!.toLowerCase();
    switch (word) {
      case "/help":
        this.#say(HELP);
        return;
      case "/reset":
      case "restart":
        this.#conversation.reset();
        this.#say("(conversation cleared)");
        return;
      case "/status":
        this.#say(this.#status());
        return;
      case "/bye":
        this.#conversation.reset();
        this.#say("(conversation ended; goodbye)\n");
        this.#freshSession();
        // The fresh session printed its own prompt; keep #submit's caller from adding one.
        this.#busy = false;
        return;
      case "/scpi":
        await this.#scpi(line.slice(5).trim());
        return;
    }
    if (line.startsWith("/")) {
      this.#say(`unknown command ${word}; /help lists the commands`);
      return;
    }
    await this.#answer(line);
  }

  async #scpi(query: string): Promise<void> {
    this.#say((await scpiCommandReply(this.#options.scpi, query)).text);
  }

  async #answer(question: string): Promise<void> {
    const turn: Turn = { controller: new AbortController(), cancelled: false };
    this.#turn = turn;
    const live = () => !turn.cancelled && this.#turn === turn;
    try {
      await this.#generate(question, turn, live);
      if (!live()) return;
      if (this.#output.takeReplaced() && !this.#toldAscii) {
        this.#toldAscii = true;
        this.#say("(characters this ASCII terminal cannot show were replaced by ?; --serial-charset utf8 shows them)");
      }
      // On a slow line the answer is over only once the line has carried it: Ctrl-C still cancels until then.
      await this.#drained();
    } finally {
      if (this.#turn === turn) this.#turn = undefined;
    }
  }

  async #generate(question: string, turn: Turn, live: () => boolean): Promise<void> {
    try {
      const result = await this.#conversation.ask(this.#options.service, question, {
        signal: turn.controller.signal,
        onDelta: (text) => {
          if (live()) this.#send(this.#output.format(text));
        },
        onQueued: (position) => {
          if (live()) this.#say(`(waiting: the model is answering someone else; you are number ${position} in line)`);
        },
      });
      if (!live()) return;
      this.#send(this.#output.endLine());
      if (result.finishReason === "cancelled") this.#say("(answer cancelled)");
      else
        this.#say(
          `[${result.usage.completionTokens} tokens, ${result.timings.tokensPerSecond} tokens/s, first token ${Math.round(result.timings.ttftMs)} ms]`,
        );
    } catch (error) {
      if (!live()) return;
      const agentError = toAgentError(error);
      this.#send(this.#output.endLine());
      if (agentError.code === "IA_ERR_CANCELLED") this.#say("(answer cancelled)");
      else {
        if (agentError.code === "IA_ERR_INTERNAL") this.#log.error({ err: error }, "answer failed");
        this.#say(`error ${agentError.code}: ${agentError.message}`);
      }
    }
  }

  /**
   * Ctrl-C during an answer: stop generating, drop what is waiting to go out (here and in
   * the OS), then say so and prompt, without waiting for the backlog to drain.
   */
  async #cancel(): Promise<void> {
    const turn = this.#turn;
    if (!turn || turn.cancelled) return;
    this.#cancelling = true;
    this.#abortTurn();
    await this.#link.flushOutput().catch(() => undefined);
    // The chunk in flight finishes into the emptied buffer; flush once more so it does not trail the notice.
    await Promise.race([this.#inFlight, sleep(IN_FLIGHT_WAIT_MS)]);
    this.#pending = [];
    await this.#link.flushOutput().catch(() => undefined);
    this.#discipline.clearLine();
    this.#send(`${this.#output.endLine()}^C\r\n`);
    this.#output.atLineStart();
    this.#say("(answer cancelled)");
    this.#busy = false;
    this.#cancelling = false;
    this.#prompt();
  }

  #abortTurn(): void {
    const turn = this.#turn;
    if (!turn) return;
    turn.cancelled = true;
    this.#turn = undefined;
    turn.controller.abort();
    this.#pending = [];
  }

  #status(): string {
    const info = this.#options.service.runtime.info;
    const stats = this.#options.service.stats;
    const queue = this.#options.service.queue;
    return [
      `model    ${info.modelLabel}${info.isDemo ? " (demo: random weights, random answers)" : ""}`,
      `threads  ${info.threads}   context ${info.contextSize} tokens   parallel ${info.parallelSequences}`,
      `mlock    ${info.mlock.locked ? "locked" : info.mlock.requested ? "requested but NOT locked" : "off"} (${info.mlock.detail})`,
      `speed    ${stats.lastTokensPerSecond} tokens/s, first token ${Math.round(stats.lastTtftMs)} ms (last answer)`,
      `queue    ${queue.running} answering, ${queue.waiting} waiting`,
      `history  ${this.#conversation.messages.length} messages`,
      `line     ${this.#options.lineLabel ?? this.#link.path}, ${this.#options.charset ?? "utf8"}, wrap ${this.#options.wrap ? `${this.#options.wrap} columns` : "off"}, line limit ${this.#options.lineLimit ?? 1000}`,
    ].join("\n");
  }

  /** A message on lines of its own. */
  #say(text: string): void {
    this.#send(this.#output.endLine() + this.#output.format(`${text}\n`));
  }

  #prompt(): void {
    this.#send(`${this.#output.endLine()}> `);
    this.#output.atLineStart();
  }

  #send(text: string): void {
    if (text === "" || !this.#link.isOpen) return;
    this.#pending.push(Buffer.from(text, "utf8"));
    if (!this.#pumping) void this.#pump();
  }

  async #pump(): Promise<void> {
    const epoch = this.#epoch;
    this.#pumping = true;
    try {
      while (this.#pending.length > 0 && this.#link.isOpen && epoch === this.#epoch) {
        const all = Buffer.concat(this.#pending);
        const chunk = all.subarray(0, WRITE_CHUNK);
        this.#pending = all.length > WRITE_CHUNK ? [all.subarray(WRITE_CHUNK)] : [];
        this.#inFlight = this.#link.write(chunk);
        await this.#inFlight.catch((error: unknown) => this.#log.debug({ err: error }, "serial write failed"));
      }
    } finally {
      if (epoch === this.#epoch) {
        this.#pumping = false;
        this.#inFlight = undefined;
      }
    }
  }

  async #drained(): Promise<void> {
    while (this.#pumping) await (this.#inFlight ?? sleep(10)).catch(() => undefined);
  }

  #newDiscipline(): LineDiscipline {
    return new LineDiscipline({ maxChars: this.#options.lineLimit ?? 1000, charset: this.#options.charset ?? "utf8" });
  }

  #newOutput(): SerialOutput {
    return new SerialOutput({ charset: this.#options.charset ?? "utf8", wrap: this.#options.wrap ?? 0 });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
