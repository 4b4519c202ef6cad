import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AnswerService } from "../../agent/service/answerService.js";
import { createLogger } from "../../common/logger.js";
import type { GenerateRequest, GenerateResult, ModelRuntime, RuntimeInfo } from "../../agent/engine/modelRuntime.js";
import { RequestQueue } from "../../agent/service/requestQueue.js";
import { IN_FLIGHT_WAIT_MS, SerialConsole } from "../../agent/transports/serial/serialConsole.js";
import type { SerialLink, SerialLinkEvents } from "../../common/serial/serialLink.js";

/**
 * A serial line that transmits at a real baud rate (10 bits a byte) on the fake clock: `write`
 * resolves when the bytes would have left the UART, like `drain`. `flushOutput` discards what
 * is left; with `flushKeepsInFlight` the chunk in flight still goes out whole (a driver that
 * cannot drop what it handed the UART).
 */
class PacedFakeLink implements SerialLink {
  readonly path = "/dev/fake0";
  isOpen = false;
  transmitted = "";
  writes: number[] = [];
  concurrentWrites = 0;
  maxConcurrentWrites = 0;
  flushes = 0;
  failOpens = 0;
  opens = 0;
  flushKeepsInFlight = false;
  events: SerialLinkEvents = {};
  #current: { bytes: Buffer; sent: number; done: () => void; timer: NodeJS.Timeout } | undefined;

  constructor(readonly baud: number) {}

  async open(events: SerialLinkEvents): Promise<void> {
    this.opens += 1;
    if (this.failOpens > 0) {
      this.failOpens -= 1;
      throw Object.assign(new Error("No such file or directory, cannot open /dev/fake0"), { code: "ENOENT" });
    }
    this.events = events;
    this.isOpen = true;
  }

  write(bytes: Buffer | string): Promise<void> {
    const buffer = Buffer.from(bytes);
    this.writes.push(buffer.length);
    this.concurrentWrites += 1;
    this.maxConcurrentWrites = Math.max(this.maxConcurrentWrites, this.concurrentWrites);
    return new Promise((resolve) => {
      const perByteMs = 10_000 / this.baud;
      const current = {
        bytes: buffer,
        sent: 0,
        done: () => {
          clearInterval(current.timer);
          this.#current = undefined;
          this.concurrentWrites -= 1;
          resolve();
        },
        timer: setInterval(() => {
          const next = current.bytes.subarray(current.sent, current.sent + 1);
          this.transmitted += next.toString("latin1");
          current.sent += 1;
          if (current.sent >= current.bytes.length) current.done();
        }, perByteMs),
      };
      this.#current = current;
    });
  }

  async flushOutput(): Promise<void> {
    this.flushes += 1;
    const current = this.#current;
    if (current && !this.flushKeepsInFlight) current.done();
  }

  async close(): Promise<void> {
    this.isOpen = false;
  }

  type(text: string | number[]): void {
    this.events.onData?.(typeof text === "string" ? Buffer.from(text, "utf8") : Buffer.from(text));
  }

  unplug(): void {
    this.isOpen = false;
    this.events.onClose?.({ disconnected: true, error: Object.assign(new Error("bad file descriptor"), { disconnected: true }) });
  }
}

/** A model that writes `deltas` pieces of text, one every `everyMs`, and stops when aborted. */
class FakeRuntime implements ModelRuntime {
  readonly slots = 1;
  readonly disposed = false;
  readonly info: RuntimeInfo = {
    modelPath: "/m/fake.gguf",
    modelLabel: "fake",
    isDemo: false,
    threads: 1,
    contextSize: 1024,
    parallelSequences: 1,
    mlock: { requested: false, locked: false, lockedBytes: null, detail: "off" },
    loadMs: 1,
    backend: "fake",
    engine: "inline",
    speculation: "off",
  };
  constructor(
    readonly deltas: number,
    readonly everyMs = 1,
    readonly piece = "word word word word ",
  ) {}

  async generate(_slot: number, request: GenerateRequest): Promise<GenerateResult> {
    let text = "";
    let finishReason: GenerateResult["finishReason"] = "length";
    for (let i = 0; i < this.deltas; i++) {
      if (request.signal?.aborted) {
        finishReason = "cancelled";
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, this.everyMs));
      text += this.piece;
      request.onDelta?.(this.piece);
    }
    return {
      text,
      finishReason,
      usage: { promptTokens: 3, completionTokens: this.deltas },
      timings: { ttftMs: 1, tokensPerSecond: 100, promptTokensPerSecond: 100, totalMs: 1, queuedMs: 0 },
    };
  }

  async countTokens(text: string): Promise<number> {
    return text.length;
  }

  async dispose(): Promise<void> {}
}

const logger = createLogger({ level: "silent" });
const consoles: SerialConsole[] = [];

function makeConsole(
  link: SerialLink,
  runtime: ModelRuntime,
  service = new AnswerService(runtime, new RequestQueue({ slots: 1 }), { system: "s", params: {} }),
): SerialConsole {
  const console = new SerialConsole({ link, service, logger, banner: "BANNER", reopenFirstMs: 10, reopenMaxMs: 40 });
  consoles.push(console);
  return console;
}

/** Runs the fake clock in small steps until `check` holds; fails naming `what` after `maxMs` of fake time. */
async function advanceUntil(check: () => boolean, what: string, maxMs = 10_000, stepMs = 5): Promise<number> {
  let elapsed = 0;
  while (!check()) {
    if (elapsed >= maxMs) throw new Error(`${what} did not happen within ${maxMs} ms of fake time`);
    await vi.advanceTimersByTimeAsync(stepMs);
    elapsed += stepMs;
  }
  return elapsed;
}

/** Runs the fake clock until `promise` settles. */
async function settle<T>(promise: Promise<T>, what: string): Promise<T> {
  let done = false;
  void promise.finally(() => (done = true)).catch(() => undefined);
  await advanceUntil(() => done, what);
  return promise;
}

async function openConsole(link: PacedFakeLink, runtime: ModelRuntime, service?: AnswerService): Promise<SerialConsole> {
  const console = makeConsole(link, runtime, service);
  await console.start();
  await advanceUntil(() => link.transmitted.endsWith("> "), "the first prompt");
  return console;
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(async () => {
  for (const console of consoles.splice(0)) await settle(console.stop(), "stop");
  vi.useRealTimers();
});

describe("SerialConsole on a 9600-baud line", () => {
  it("writes one small chunk at a time, each drained, so the backlog stays in the agent", async () => {
    const link = new PacedFakeLink(9600);
    // 200 pieces of 20 bytes in about 0.4 s: 4000 bytes take over 4 s at 9600 baud.
    await openConsole(link, new FakeRuntime(200, 2));
    link.type("question\r");
    await advanceUntil(() => link.transmitted.includes("word word"), "the answer");
    await vi.advanceTimersByTimeAsync(500);
    expect(link.maxConcurrentWrites).toBe(1);
    expect(Math.max(...link.writes)).toBeLessThanOrEqual(128);
  });

  it("Ctrl-C cancels at once although seconds of output are backlogged, and nothing of the answer follows", async () => {
    const link = new PacedFakeLink(9600);
    await openConsole(link, new FakeRuntime(200, 2));
    link.type("question\r");
    await advanceUntil(() => link.transmitted.includes("word word"), "the answer");
    // Generation is done after 0.4 s; the line needs 4 s more for the backlog.
    await vi.advanceTimersByTimeAsync(500);
    link.type([0x03]);
    // One flush drops the chunk in flight, so the notice goes out after a few byte times, not seconds.
    await advanceUntil(() => link.transmitted.endsWith("(answer cancelled)\r\n> "), "the cancel notice", 100, 1);
    expect(link.flushes).toBe(2);
    const words = link.transmitted.split("word").length - 1;
    expect(words).toBeLessThan(150);
    const at = link.transmitted.length;
    await vi.advanceTimersByTimeAsync(5000);
    expect(link.transmitted.slice(at)).toBe("");
  });

  it("a chunk the driver cannot drop is waited for IN_FLIGHT_WAIT_MS, then the OS buffer is flushed again", async () => {
    // At 300 baud one 128-byte chunk takes 4.3 s, far longer than the wait.
    const link = new PacedFakeLink(300);
    link.flushKeepsInFlight = true;
    await openConsole(link, new FakeRuntime(50, 1));
    link.type("question\r");
    await advanceUntil(() => link.transmitted.includes("word"), "the answer", 20_000);
    link.type([0x03]);
    await vi.advanceTimersByTimeAsync(0);
    expect(link.flushes).toBe(1);
    await vi.advanceTimersByTimeAsync(IN_FLIGHT_WAIT_MS - 1);
    expect(link.flushes).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(link.flushes).toBe(2);
    await advanceUntil(() => link.transmitted.endsWith("(answer cancelled)\r\n> "), "the cancel notice", 10_000);
  });
});

describe("SerialConsole port lifetime", () => {
  it("retries a missing port after 10, 20 and 40 ms, shows the banner when it appears, and reopens after an unplug", async () => {
    const link = new PacedFakeLink(921_600);
    link.failOpens = 3;
    const console = makeConsole(link, new FakeRuntime(2));
    await console.start();
    expect(link.opens).toBe(1);
    await vi.advanceTimersByTimeAsync(10);
    expect(link.opens).toBe(2);
    await vi.advanceTimersByTimeAsync(20);
    expect(link.opens).toBe(3);
    await vi.advanceTimersByTimeAsync(39);
    expect(link.isOpen).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(link.isOpen).toBe(true);
    expect(link.opens).toBe(4);
    await advanceUntil(
      () => link.transmitted.includes("BANNER\r\nSerial console: UTF-8; type a question and press Enter.\r\n> "),
      "the banner",
    );
    link.transmitted = "";
    link.failOpens = 1;
    link.unplug();
    // The backoff starts again from 10 ms after a successful open.
    await vi.advanceTimersByTimeAsync(10);
    expect(link.opens).toBe(5);
    await vi.advanceTimersByTimeAsync(20);
    expect(link.opens).toBe(6);
    await advanceUntil(() => link.isOpen && link.transmitted.includes("BANNER"), "the banner after the unplug");
  });

  it("tells a waiting person their place in the shared queue, and both questions are answered", async () => {
    const link = new PacedFakeLink(921_600);
    const runtime = new FakeRuntime(40, 5);
    const service = new AnswerService(runtime, new RequestQueue({ slots: 1 }), { system: "s", params: {} });
    await openConsole(link, runtime, service);
    // Someone else (an MQTT requester, in the agent) holds the one sequence.
    const other = service.answer({ messages: [{ role: "user", content: "from mqtt" }] });
    link.type("from the terminal\r");
    await advanceUntil(
      () => link.transmitted.includes("(waiting: the model is answering someone else; you are number 1 in line)\r\n"),
      "the waiting notice",
    );
    expect((await settle(other, "the other answer")).finishReason).toBe("length");
    await advanceUntil(() => /\[40 tokens, [^\]]+\]\r\n> $/.test(link.transmitted), "the console's answer");
    expect(link.transmitted.indexOf("(waiting")).toBeLessThan(link.transmitted.indexOf("word"));
  });
});

describe("SerialConsole commands (the set shared with chat)", () => {
  /** Types a line and returns what came back up to the next prompt. */
  async function exchange(link: PacedFakeLink, line: string): Promise<string> {
    const from = link.transmitted.length;
    link.type(`${line}\r`);
    await advanceUntil(() => link.transmitted.slice(from + line.length).includes("\r\n> "), `the prompt after ${line}`);
    return link.transmitted.slice(from);
  }

  it("matches slash commands by their first word, and `stop` only as the whole line", async () => {
    const link = new PacedFakeLink(921_600);
    await openConsole(link, new FakeRuntime(2));
    expect(await exchange(link, "/HELP me")).toContain("  /bye, stop       end the conversation");
    const question = await exchange(link, "stop frequency?");
    expect(question).toMatch(/\[2 tokens, /);
    expect(await exchange(link, "/status")).toContain("history  2 messages");
    const stop = await exchange(link, " STOP ");
    expect(stop).toContain("(conversation ended; goodbye)\r\n\r\nBANNER\r\n");
    expect(stop.split("> ").length - 1).toBe(1);
    expect(await exchange(link, "/status")).toContain("history  0 messages");
    expect(await exchange(link, "/nope x")).toContain("unknown command /nope; /help lists the commands");
  });
});
