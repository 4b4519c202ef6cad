import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineProcess } from "../../agent/engine/process/engineProcess.js";
import { LlamaRuntime } from "../../agent/engine/llamaRuntime.js";
import { createLogger } from "../../common/logger.js";
import type { GenerateRequest } from "../../agent/engine/modelRuntime.js";
import { synthModel, tempDir } from "../helpers/models.js";
import { isAlive, waitUntil } from "../helpers/wait.js";

// The engine process for real: engineMain.ts forked under tsx with one libuv thread (as from a
// checkout; the bundle's path is covered through the CLI tests), the real node-llama-cpp and
// the project's tiny random-weight model, against llama.cpp loaded inline in this process as
// the reference for what the answers must be. Each test that ends an engine starts its own.
const dir = tempDir("iagent-engine-");
let modelPath: string;
let engine: EngineProcess;
let inline: LlamaRuntime;
const logger = createLogger({ level: "silent" });
const options = () => ({
  modelPath,
  modelLabel: "tiny",
  isDemo: true,
  threads: 1,
  contextSize: 1024,
  parallelSequences: 4,
  mlock: false,
  logger,
});
const greedy = (content: string, maxTokens = 24): GenerateRequest => ({
  mode: "chat",
  messages: [{ role: "user", content }],
  params: { temperature: 0, seed: 1, maxTokens },
});

/** The pids of this process's children (any state, zombies included), from /proc (Linux). */
function childPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // The command name may hold spaces and parentheses: the fields after it are state, ppid, ...
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid) pids.push(Number(entry));
    } catch {
      // The process ended between readdir and read.
    }
  }
  return pids;
}

beforeAll(async () => {
  modelPath = await synthModel(dir);
  [engine, inline] = await Promise.all([EngineProcess.load(options()), LlamaRuntime.load({ ...options(), parallelSequences: 1 })]);
}, 60_000);

afterAll(async () => {
  await engine?.dispose();
  await inline?.dispose();
});

describe("the engine process", () => {
  it("runs llama.cpp in a child with one libuv thread and reports what it loaded", async () => {
    const pid = engine.pid!;
    expect(pid).toBeGreaterThan(0);
    expect(pid).not.toBe(process.pid);
    expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")).toContain("UV_THREADPOOL_SIZE=1");
    expect(engine.info).toMatchObject({ engine: "process", threads: 1, parallelSequences: 4, modelLabel: "tiny" });
    expect(engine.slots).toBe(4);
    expect(inline.info.engine).toBe("inline");
  });

  it("answers exactly as llama.cpp inline does, streaming deltas that add up to the text", async () => {
    const deltas: string[] = [];
    const remote = await engine.generate(0, { ...greedy("What is RBW?"), onDelta: (d) => deltas.push(d) });
    const local = await inline.generate(0, greedy("What is RBW?"));
    expect(remote.text.length).toBeGreaterThan(0);
    expect(remote.text).toBe(local.text);
    expect(deltas.join("")).toBe(remote.text);
    // Deltas after the first are gathered into fewer messages than tokens.
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.length).toBeLessThanOrEqual(remote.usage.completionTokens);
    expect(remote.usage).toEqual(local.usage);
    expect(await engine.countTokens("measure the span")).toBe(await inline.countTokens("measure the span"));
  });

  it("keeps the engine's error codes: a question too long for the context", async () => {
    const long = "frequency ".repeat(3000);
    await expect(engine.generate(0, greedy(long))).rejects.toMatchObject({
      code: "IA_ERR_PROMPT_TOO_LONG",
      message: expect.stringContaining("1024"),
    });
    expect((await engine.generate(0, greedy("span?", 4))).usage.completionTokens).toBe(4);
  });

  it("cancels through the abort signal", async () => {
    const controller = new AbortController();
    const result = await engine.generate(1, {
      ...greedy("sweep time?", 400),
      signal: controller.signal,
      onDelta: () => controller.abort(),
    });
    expect(result.finishReason).toBe("cancelled");
    expect(result.usage.completionTokens).toBeLessThan(400);
  });

  it("serves four sequences at once, their batches put in sequence-id order", async () => {
    const before = await engine.stats();
    const results = await Promise.all([3, 1, 2, 0].map((slot) => engine.generate(slot, greedy(`question ${slot}`, 16))));
    for (const result of results) expect(result.usage.completionTokens).toBe(16);
    // The batching strategy read node-llama-cpp's sequence ids for every batch of several
    // sequences (queuedSequenceIds.ts), and the prompts, queued as 3, 1, 2, 0,
    // went out sorted: a node-llama-cpp upgrade that moves the ids, or a strategy that stops
    // sorting, fails here instead of silently splitting batches again.
    const after = await engine.stats();
    expect(after.orderedBatches - before.orderedBatches).toBeGreaterThanOrEqual(15);
    expect(after.reorderedBatches - before.reorderedBatches).toBeGreaterThanOrEqual(1);
    expect(after.unorderedBatches).toBe(before.unorderedBatches);
  });

  it("when the engine dies mid-answer, says IA_ERR_ENGINE_EXITED and starts it again for the next question", async () => {
    const own = await EngineProcess.load({ ...options(), parallelSequences: 1 });
    try {
      const first = own.pid!;
      const answer = own.generate(0, { ...greedy("long answer", 400), onDelta: () => process.kill(first, "SIGKILL") });
      await expect(answer).rejects.toMatchObject({ code: "IA_ERR_ENGINE_EXITED", message: expect.stringContaining("SIGKILL") });
      const again = await own.generate(0, greedy("What is RBW?"));
      expect(again.text).toBe((await inline.generate(0, greedy("What is RBW?"))).text);
      expect(own.pid).not.toBe(first);
      expect(isAlive(first)).toBe(false);
    } finally {
      await own.dispose();
    }
  });

  it("a file llama.cpp cannot load fails with IA_ERR_MODEL_LOAD and leaves no engine behind", async () => {
    const broken = path.join(dir, "broken.gguf");
    writeFileSync(broken, readFileSync(modelPath).subarray(0, 4096));
    const before = childPids();
    // The engine is forked before load's first await, so it is already this process's child here.
    const loading = EngineProcess.load({ ...options(), modelPath: broken });
    const started = childPids().filter((pid) => !before.includes(pid));
    expect(started).toHaveLength(1);
    await expect(loading).rejects.toMatchObject({
      code: "IA_ERR_MODEL_LOAD",
      message: expect.stringContaining(broken),
    });
    // Gone, not even a zombie: killed and reaped.
    await waitUntil(() => !childPids().includes(started[0]!), { what: `the engine of the failed load (pid ${started[0]}) ending` });
    expect(childPids().filter((pid) => !before.includes(pid))).toEqual([]);
  });

  it("dispose ends the engine process", async () => {
    const other = await EngineProcess.load({ ...options(), parallelSequences: 1 });
    const pid = other.pid!;
    expect(isAlive(pid)).toBe(true);
    await other.dispose();
    await waitUntil(() => !isAlive(pid), { what: "the engine process ending" });
    await expect(other.generate(0, greedy("x"))).rejects.toMatchObject({ code: "IA_ERR_DISPOSED" });
  });
});
