import { mkdirSync, readdirSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import { modelArgs, tempDir } from "../helpers/models.js";

// `bench` through the real bundle on the tiny model: every figure is reported with a sane
// type. No timing is asserted here: speed goals live in `bench` itself.
const dir = tempDir("iagent-bench-");
const tiny = path.join(dir, "t.gguf");

beforeAll(async () => {
  const synth = await runAgent(["models", "synth", "--shape", "tiny", "--out", tiny]);
  expect(synth.code).toBe(0);
});

/** A figure that must be above 0: a count, a size, a duration or a rate that was measured (NaN and 0 fail). */
const positive = expect.toSatisfy((value: unknown) => typeof value === "number" && value > 0, "a number above 0");
const figures = {
  runs: 1,
  promptTokens: positive,
  completionTokens: positive,
  ttftMs: positive,
  promptTokensPerSecond: positive,
  tokensPerSecond: positive,
};

describe("bench", () => {
  it("--json reports every figure in process, over the embedded broker and with concurrent requesters", async () => {
    const args = [
      "bench",
      "--model",
      tiny,
      "--threads",
      "1",
      "--mlock",
      "off",
      "--bench-runs",
      "1",
      "--bench-prompt",
      "24",
      "--bench-tokens",
      "8",
    ];
    // The journal's temp folder goes under TMPDIR (os.tmpdir()), and is removed at the end.
    const tmp = path.join(dir, "tmp");
    mkdirSync(tmp);
    const result = await runAgent([...args, "--bench-concurrency", "1,2", "--json"], { timeoutMs: 120_000, env: { TMPDIR: tmp } });
    expect(result.code, result.stderr).toBe(0);
    // At warn, bench's default log level: it closes its MQTT paths without warnings. mqtt.js
    // acknowledging a message as the socket closed used to log two "MQTT connection error ...
    // write after end" warnings at the end, which a newcomer reads as a failure.
    expect(result.stderr).not.toContain("write after end");
    expect(result.stderr).not.toContain('"level":40');
    const report = JSON.parse(result.stdout) as Record<string, any>;
    expect(report).toMatchObject({
      machine: {
        cpu: expect.any(String),
        physicalCores: positive,
        logicalCores: positive,
        memoryGiB: positive,
        node: process.version,
        engine: "process",
        uvThreadpoolSize: "1",
      },
      model: { path: tiny, fileBytes: positive },
      threads: 1,
      parallelSequences: 2,
      runs: 1,
      loadMs: positive,
      startToLoadedMs: positive,
      peakRssMiB: positive,
      peakRssByProcessMiB: { agent: positive, engine: positive },
      llamaBench: null,
      raw: figures,
      inProcess: figures,
      mqtt: { ...figures, broker: expect.stringMatching(/^mqtt:\/\/127\.0\.0\.1:\d+$/) },
      // The same path with the request journal: it really journaled (each question and its final, each synced).
      mqttJournal: {
        ...figures,
        broker: expect.stringMatching(/^mqtt:\/\/127\.0\.0\.1:\d+$/),
        journal: { records: positive, syncs: positive, bytes: positive },
      },
    });
    // Warm-up and one round: two questions journaled, each with its accept and its final synced.
    expect(report.mqttJournal.journal.records).toBeGreaterThanOrEqual(4);
    expect(report.mqttJournal.journal.syncs).toBeGreaterThanOrEqual(2);
    expect(report.ratios.journalGenerationRatio).toBeGreaterThan(0);
    for (const key of ["journalGenerationRatio", "journalTtftOverheadMs", "journalTtftDifferenceMs"])
      expect(Number.isFinite(report.ratios[key]), key).toBe(true);
    expect(readdirSync(tmp).filter((name) => name.startsWith("iagent-bench-journal-"))).toEqual([]);
    expect(report.ratios.mqttJournalVsLlamaBench).toEqual({ prompt: null, generation: null });
    for (const key of ["raw", "inProcess", "mqtt", "mqttJournal"]) {
      for (const value of Object.values(report[key] as Record<string, unknown>))
        if (typeof value === "number") expect(value).toBeGreaterThanOrEqual(0);
      expect(report[key].completionTokens).toBeGreaterThan(0);
    }
    expect(report.concurrency.map((c: { requesters: number }) => c.requesters)).toEqual([1, 2]);
    for (const c of report.concurrency) expect(c.aggregateTokensPerSecond).toBeGreaterThan(0);
    expect(report.ratios.rawVsLlamaBench).toEqual({ prompt: null, generation: null });
    expect(report.ratios.mqttVsInProcess.generation).toBeGreaterThan(0);
    // Each request's TTFT paired with the engine's own: the path adds something, and never takes time away.
    expect(report.raw.pathMs).toBeNull();
    expect(report.inProcess.pathMs).toBeGreaterThan(0);
    expect(report.mqtt.pathMs).toBeGreaterThan(0);
    expect(report.ratios.mqttTtftOverheadMs).toBeCloseTo(report.mqtt.pathMs - report.inProcess.pathMs, 1);
    expect(typeof report.ratios.mqttTtftMedianDifferenceMs).toBe("number");
    expect(report.ratios.concurrencySpeedup).toBeGreaterThan(0);

    const table = await runAgent([...args, "--bench-concurrency", "1", "--mqtt", "off"], { timeoutMs: 120_000 });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^node-llama-cpp loop\s+\d/m);
    expect(table.stdout).toMatch(/^agent, MQTT \(client's view\)\s+\(not run\)/m);
    expect(table.stdout).toMatch(/^agent, MQTT \+ request journal\s+\(not run\)/m);
    expect(table.stdout).not.toContain("conversation grounded in");
  });

  it("with --instrument sim: first-question and follow-up TTFT of a 5-turn conversation whose marker reading changes", async () => {
    const result = await runAgent(
      [
        "bench",
        ...modelArgs(tiny),
        "--bench-runs",
        "1",
        "--bench-tokens",
        "8",
        "--bench-concurrency",
        "1",
        "--mqtt",
        "off",
        "--instrument",
        "sim",
        "--json",
      ],
      { timeoutMs: 120_000 },
    );
    expect(result.code, result.stderr).toBe(0);
    const { conversation } = JSON.parse(result.stdout) as {
      conversation: {
        instrument: string;
        turns: { ttftMs: number; promptTokens: number; turnTokens: number; markerDbm: number | null }[];
        first: { ttftMs: number; promptTokens: number };
        followUp: { ttftMs: number; promptTokens: number; turnTokens: number };
      };
    };
    expect(conversation.instrument).toBe("sim");
    expect(conversation.turns).toHaveLength(5);
    // The simulator's marker moved between turns: the reading changed.
    expect(new Set(conversation.turns.map((t) => t.markerDbm)).size).toBeGreaterThan(1);
    for (const turn of conversation.turns) expect(turn.ttftMs).toBeGreaterThan(0);
    // The system prompt was evaluated at load, and a changed reading in the new turn left the
    // history cached: each turn evaluates its own tokens plus at most the chat template's
    // markers and the previous answer (8 tokens here), not the whole conversation again.
    for (const turn of conversation.turns) expect(turn.promptTokens).toBeLessThanOrEqual(turn.turnTokens + 8 + 16);
    expect(conversation.followUp.promptTokens).toBeLessThan(conversation.turns.slice(0, 4).reduce((sum, t) => sum + t.turnTokens, 0));
  });

  it("a bad --bench-concurrency or a missing --llama-bench binary is bad usage: exit 2", async () => {
    const bad = await runAgent(["bench", "--model", tiny, "--bench-concurrency", "1,x"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--bench-concurrency");
    const missing = await runAgent(["bench", "--model", tiny, "--llama-bench", path.join(dir, "no-such-llama-bench")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--llama-bench");
  });
});
