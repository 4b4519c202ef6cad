import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnswerService } from "../../agent/service/answerService.js";
import { Conversation } from "../../agent/service/conversation.js";
import { LlamaRuntime } from "../../agent/engine/llamaRuntime.js";
import { createLogger } from "../../common/logger.js";
import { RequestQueue } from "../../agent/service/requestQueue.js";
import { synthModel, tempDir } from "../helpers/models.js";

// The real node-llama-cpp with the project's own tiny random-weight model. One model,
// loaded once with two sequences, serves every test in this file.
let runtime: LlamaRuntime;
let service: AnswerService;
const logger = createLogger({ level: "silent" });
const greedy = { temperature: 0, seed: 1, maxTokens: 16 };

beforeAll(async () => {
  const modelPath = await synthModel(tempDir());
  runtime = await LlamaRuntime.load({
    modelPath,
    modelLabel: "tiny",
    isDemo: true,
    threads: 1,
    contextSize: 1024,
    parallelSequences: 2,
    mlock: false,
    logger,
  });
  service = new AnswerService(runtime, new RequestQueue({ slots: runtime.slots }), { system: "Be brief.", params: { maxTokens: 16 } });
});

afterAll(async () => {
  await runtime?.dispose();
});

describe("LlamaRuntime with a synthetic tiny model", () => {
  it("reports what it loaded", () => {
    expect(runtime.info.threads).toBe(1);
    expect(runtime.info.contextSize).toBeGreaterThanOrEqual(1024);
    expect(runtime.info.parallelSequences).toBe(2);
    expect(runtime.slots).toBe(2);
    expect(runtime.info.mlock.requested).toBe(false);
    expect(runtime.info.loadMs).toBeGreaterThan(0);
  });

  it("streams deltas whose concatenation is the final text, with usage and timings", async () => {
    const deltas: string[] = [];
    const result = await service.answer(
      { messages: [{ role: "user", content: "你好" }], params: greedy },
      { onDelta: (d) => deltas.push(d) },
    );
    expect(result.text.length).toBeGreaterThan(0);
    expect(deltas.join("")).toBe(result.text);
    expect(result.finishReason).toBe("length");
    expect(result.usage.completionTokens).toBe(16);
    expect(result.usage.promptTokens).toBeGreaterThan(0);
    expect(result.timings.ttftMs).toBeGreaterThan(0);
    expect(result.timings.tokensPerSecond).toBeGreaterThan(0);
  });

  it("is deterministic at temperature 0 with a seed", async () => {
    const ask = () => service.answer({ messages: [{ role: "user", content: "What is RBW?" }], params: greedy });
    const first = await ask();
    const second = await ask();
    expect(second.text).toBe(first.text);
  });

  it("completes raw text without the chat template", async () => {
    const result = await service.answer({ mode: "raw", prompt: "The resolution bandwidth", params: { ...greedy, maxTokens: 8 } });
    expect(result.usage.completionTokens).toBe(8);
    expect(result.finishReason).toBe("length");
  });

  it("stops when the signal aborts and says the answer was cancelled", async () => {
    const controller = new AbortController();
    let deltas = 0;
    const result = await service.answer(
      { messages: [{ role: "user", content: "Tell me a long story." }], params: { temperature: 0, maxTokens: 400 } },
      {
        signal: controller.signal,
        onDelta: () => {
          deltas += 1;
          if (deltas === 3) controller.abort();
        },
      },
    );
    expect(result.finishReason).toBe("cancelled");
    expect(result.usage.completionTokens).toBeLessThan(400);
  });

  it("refuses a question longer than the context with IA_ERR_PROMPT_TOO_LONG and keeps serving", async () => {
    const long = "频谱仪 resolution bandwidth ".repeat(400);
    await expect(service.answer({ messages: [{ role: "user", content: long }], params: greedy })).rejects.toMatchObject({
      code: "IA_ERR_PROMPT_TOO_LONG",
      exitCode: 2,
    });
    const after = await service.answer({ messages: [{ role: "user", content: "hello" }], params: greedy });
    expect(after.usage.completionTokens).toBeGreaterThan(0);
  });

  it("answers two requesters at once on two sequences", async () => {
    expect(service.queue.slots).toBe(2);
    const ask = (q: string) => service.answer({ messages: [{ role: "user", content: q }], params: greedy });
    const [a, b] = await Promise.all([ask("first"), ask("second")]);
    expect(a.usage.completionTokens).toBe(16);
    expect(b.usage.completionTokens).toBe(16);
    expect(a.timings.queuedMs).toBeLessThan(1000);
    expect(b.timings.queuedMs).toBeLessThan(1000);
  });

  it("keeps multi-turn history in a conversation, and reset clears it", async () => {
    const conversation = new Conversation();
    await conversation.ask(service, "hello", {});
    await conversation.ask(service, "and again");
    expect(conversation.messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
    conversation.reset();
    expect(conversation.messages).toHaveLength(0);
  });
});
