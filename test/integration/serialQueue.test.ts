import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnswerService } from "../../agent/service/answerService.js";
import { LlamaRuntime } from "../../agent/engine/llamaRuntime.js";
import { createLogger } from "../../common/logger.js";
import { RequestQueue } from "../../agent/service/requestQueue.js";
import { SerialConsole } from "../../agent/transports/serial/serialConsole.js";
import { SerialPortLink } from "../../common/serial/serialPortLink.js";
import { synthModel, tempDir } from "../helpers/models.js";
import { PtyPair, PtyTerminal } from "../helpers/socat.js";
import { waitUntil } from "../helpers/wait.js";

// The serial console and a second requester share one AnswerService and its queue over
// the real node-llama-cpp with one sequence, as the console and MQTT do inside `run`. The
// second requester stands in for an MQTT client: it calls the service exactly as the MQTT
// transport does.

const dir = tempDir("iagent-serialq-");
const logger = createLogger({ level: "silent" });
const pair = new PtyPair(dir, "queue");
let runtime: LlamaRuntime;
let service: AnswerService;
let console: SerialConsole;
let terminal: PtyTerminal;

beforeAll(async () => {
  await pair.start();
  terminal = new PtyTerminal(pair.b);
  await terminal.open();
  runtime = await LlamaRuntime.load({
    modelPath: await synthModel(dir),
    modelLabel: "tiny",
    isDemo: true,
    threads: 1,
    contextSize: 2048,
    parallelSequences: 1,
    mlock: false,
    logger,
  });
  service = new AnswerService(runtime, new RequestQueue({ slots: runtime.slots }), {
    system: "Be brief.",
    params: { maxTokens: 600, temperature: 0, seed: 1 },
  });
  console = new SerialConsole({ link: new SerialPortLink({ path: pair.a, baudRate: 9600 }), service, logger, banner: "banner" });
  await console.start();
  await terminal.waitFor("\r\n> ");
});

afterAll(async () => {
  await console?.stop();
  await terminal?.close();
  await runtime?.dispose();
  await pair.kill();
});

describe("serial console and another requester on the shared queue", () => {
  it("a console question asked while another request generates waits, is told its place, and both are answered", async () => {
    let otherStreamed = 0;
    let otherDoneAt = -1;
    const other = service
      .answer({ messages: [{ role: "user", content: "from mqtt" }], params: { maxTokens: 1500 } }, { onDelta: () => (otherStreamed += 1) })
      .then((result) => {
        // How much the terminal had received when the other request finished.
        otherDoneAt = terminal.text.length;
        return result;
      });
    await waitUntil(() => otherStreamed > 0, { what: "the other request's first token", timeoutMs: 30_000 });
    const from = terminal.text.length;
    await terminal.type("from the terminal\r");
    const waited = await terminal.waitFor("(waiting: the model is answering someone else; you are number 1 in line)\r\n", { from });
    const otherResult = await other;
    expect(otherResult.finishReason).toBe("length");
    expect(otherResult.usage.completionTokens).toBe(1500);
    const done = await terminal.waitFor(/\[600 tokens, [^\]]+\]\r\n> /, { from: waited, timeoutMs: 60_000 });
    // One sequence: the console's answer began only after the other request had finished.
    expect(otherDoneAt).toBeGreaterThanOrEqual(waited);
    expect(terminal.text.slice(waited, otherDoneAt)).toBe("");
    expect(terminal.text.slice(otherDoneAt, done).trim().length).toBeGreaterThan(0);
  });

  it("a request arriving while the console's answer generates waits its turn; both are answered", async () => {
    const from = terminal.text.length;
    await terminal.type("long one\r");
    const start = await terminal.waitFor("long one\r\n", { from });
    await terminal.waitFor(/[^]{50}/, { from: start });
    const positions: number[] = [];
    const other = await service.answer(
      { messages: [{ role: "user", content: "from mqtt" }], params: { maxTokens: 20 } },
      { onQueued: (p) => positions.push(p) },
    );
    expect(positions).toEqual([1]);
    expect(other.usage.completionTokens).toBe(20);
    await terminal.waitFor(/\[600 tokens, [^\]]+\]\r\n> /, { from: start, timeoutMs: 60_000 });
  });
});
