import { afterEach, describe, expect, it } from "vitest";
import { AnswerService } from "../../agent/service/answerService.js";
import { createLogger } from "../../common/logger.js";
import type { GenerateRequest, GenerateResult, ModelRuntime, RuntimeInfo } from "../../agent/engine/modelRuntime.js";
import { RequestQueue } from "../../agent/service/requestQueue.js";
import { SerialConsole } from "../../agent/transports/serial/serialConsole.js";
import type { SerialLink, SerialLinkEvents } from "../../common/serial/serialLink.js";
import { waitUntil } from "../helpers/wait.js";

/**
 * A serial line that transmits at a real baud rate (10 bits a byte): `write` resolves when
 * the bytes would have left the UART, like `drain`. `flushOutput` discards what is left.
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
    if (current) current.done();
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

const until = (check: () => boolean, timeoutMs = 5000) => waitUntil(check, { timeoutMs, intervalMs: 5 });

afterEach(async () => {
  for (const console of consoles.splice(0)) await console.stop();
});

describe("SerialConsole on a 9600-baud line", () => {
  it("writes one small chunk at a time, each drained, so the backlog stays in the agent", async () => {
    const link = new PacedFakeLink(9600);
    // 200 pieces of 20 bytes in about 0.4 s: 4000 bytes take over 4 s at 9600 baud.
    const console = makeConsole(link, new FakeRuntime(200, 2));
    await console.start();
    await until(() => link.transmitted.endsWith("> "));
    link.type("question\r");
    await until(() => link.transmitted.includes("word word"));
    expect(link.maxConcurrentWrites).toBe(1);
    expect(Math.max(...link.writes)).toBeLessThanOrEqual(128);
  });

  it("Ctrl-C cancels at once although seconds of output are backlogged, and nothing of the answer follows", async () => {
    const link = new PacedFakeLink(9600);
    const console = makeConsole(link, new FakeRuntime(200, 2));
    await console.start();
    await until(() => link.transmitted.endsWith("> "));
    link.type("question\r");
    await until(() => link.transmitted.includes("word word"));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const sentAt = Date.now();
    link.type([0x03]);
    await until(() => link.transmitted.endsWith("(answer cancelled)\r\n> "), 1000);
    expect(Date.now() - sentAt).toBeLessThan(1000);
    expect(link.flushes).toBeGreaterThanOrEqual(1);
    const words = link.transmitted.split("word").length - 1;
    expect(words).toBeLessThan(150);
    const at = link.transmitted.length;
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(link.transmitted.slice(at)).toBe("");
  });
});

describe("SerialConsole port lifetime", () => {
  it("retries a missing port with backoff, shows the banner when it appears, and reopens after an unplug", async () => {
    const link = new PacedFakeLink(921_600);
    link.failOpens = 3;
    const console = makeConsole(link, new FakeRuntime(2));
    await console.start();
    await until(() => link.isOpen);
    expect(link.opens).toBe(4);
    await until(() => link.transmitted.includes("BANNER\r\nSerial console: UTF-8; type a question and press Enter.\r\n> "));
    link.transmitted = "";
    link.failOpens = 1;
    link.unplug();
    await until(() => link.isOpen && link.transmitted.includes("BANNER"));
    expect(link.opens).toBe(6);
  });

  it("tells a waiting person their place in the shared queue, and both questions are answered", async () => {
    const link = new PacedFakeLink(921_600);
    const runtime = new FakeRuntime(40, 5);
    const service = new AnswerService(runtime, new RequestQueue({ slots: 1 }), { system: "s", params: {} });
    const console = makeConsole(link, runtime, service);
    await console.start();
    await until(() => link.transmitted.endsWith("> "));
    // Someone else (an MQTT requester, in the agent) holds the one sequence.
    const other = service.answer({ messages: [{ role: "user", content: "from mqtt" }] });
    link.type("from the terminal\r");
    await until(() => link.transmitted.includes("(waiting: the model is answering someone else; you are number 1 in line)\r\n"));
    expect((await other).finishReason).toBe("length");
    await until(() => /\[40 tokens, [^\]]+\]\r\n> $/.test(link.transmitted));
    expect(link.transmitted.indexOf("(waiting")).toBeLessThan(link.transmitted.indexOf("word"));
  });
});
