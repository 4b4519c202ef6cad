import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import { spawnAgent } from "../helpers/mqttAgent.js";
import { waitUntil } from "../helpers/wait.js";
import { rewriteGguf, tempDir } from "../helpers/models.js";

// The real bundle in child processes, with the real node-llama-cpp and a tiny model that
// the bundle itself synthesizes.
const dir = tempDir("iagent-cli-");
const tiny = path.join(dir, "t.gguf");
const quiet = ["--mlock", "off", "--log-level", "error", "--models-dir", path.join(dir, "models")];

beforeAll(async () => {
  const synth = await runAgent(["models", "synth", "--shape", "tiny", "--out", tiny]);
  expect(synth.stderr + synth.stdout).toContain("t.gguf");
  expect(synth.code).toBe(0);
});

describe("the bundle's command line", () => {
  it("--help lists the commands and exits 0", async () => {
    const result = await runAgent(["--help"]);
    expect(result.code).toBe(0);
    for (const command of ["run", "chat", "ask", "probe", "models"]) expect(result.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
    const models = await runAgent(["models", "--help"]);
    for (const sub of ["list", "pull", "verify", "synth"]) expect(models.stdout).toMatch(new RegExp(`^\\s+${sub}\\b`, "m"));
  });

  it("an unknown command or flag is bad usage: exit 2", async () => {
    const unknownFlag = await runAgent(["ask", "--no-such-flag", "hi"]);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain("--no-such-flag");
    const badValue = await runAgent(["probe", "--threads", "lots"]);
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toContain("IA_ERR_USAGE");
    expect(badValue.stderr).toContain("--threads");
  });

  it("models synth --shape is the model's shape: a bogus one exits 2 naming the choices, and the deployment shape is not synth's", async () => {
    const bogus = await runAgent(["models", "synth", "--shape", "bogus", "--out", path.join(dir, "bogus.gguf")]);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toMatch(/--shape.*'bogus'.*tiny, tiny-qwen3, qwen2\.5-0\.5b, qwen2\.5-1\.5b, qwen3-0\.6b/s);
    const deployment = await runAgent(["models", "synth", "--shape", "beside-instrument", "--out", path.join(dir, "beside.gguf")]);
    expect(deployment.code).toBe(2);
    const help = await runAgent(["models", "synth", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--seed <n>");
    expect(help.stdout).not.toContain("--threads");
    const elsewhere = await runAgent(["models", "synth", "--threads", "2", "--out", path.join(dir, "threads.gguf")]);
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr).toContain("unknown option '--threads'");
  });

  it("ask answers on stdout, exits 0, and gives the same text on a second run", async () => {
    const args = ["ask", "--model", tiny, "--temperature", "0", "--seed", "1", "--max-tokens", "16", ...quiet, "你好"];
    const first = await runAgent(args);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout.length).toBeGreaterThan(1);
    const second = await runAgent(args);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    const json = await runAgent([...args.slice(0, -1), "--json", "你好"]);
    const parsed = JSON.parse(json.stdout) as { text: string; usage: { completionTokens: number }; finishReason: string };
    expect(`${parsed.text}\n`.startsWith(first.stdout.replace(/\n$/, ""))).toBe(true);
    expect(parsed.usage.completionTokens).toBe(16);
    expect(parsed.finishReason).toBe("length");
  });

  it("chat with piped input answers each question, obeys /reset and stop, and exits 0", async () => {
    const input = "hello\n/status\n/reset\n/status\nwhat is the RBW?\n/status\nstop\nnever asked\n";
    const result = await runAgent(["chat", "--model", tiny, "--temperature", "0", "--max-tokens", "8", ...quiet], { input });
    expect(result.code).toBe(0);
    const out = result.stdout;
    const order = [
      "> hello",
      "> /status",
      "history  2 messages",
      "> /reset",
      "(conversation cleared)",
      "history  0 messages",
      "> what is the RBW?",
      "history  2 messages",
      "> stop",
    ];
    let from = 0;
    for (const marker of order) {
      const at = out.indexOf(marker, from);
      expect(at, `"${marker}" after offset ${from} in:\n${out}`).toBeGreaterThanOrEqual(0);
      from = at + marker.length;
    }
    expect(out).not.toContain("never asked");
  });

  it("probe --json holds the host facts, the plan and a reason for every decision", async () => {
    const result = await runAgent(["probe", "--json"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      facts: Record<string, unknown>;
      plan: Record<string, { value?: unknown; reason?: string }>;
    };
    expect(report.facts.physicalCores).toBeGreaterThanOrEqual(1);
    expect(report.facts.totalMemBytes).toBeGreaterThan(0);
    expect(report.facts.cpuFlags).toBeTypeOf("object");
    for (const key of ["model", "threads", "mlock", "contextSize", "parallelSequences", "reserve", "memory"]) {
      expect(report.plan[key]?.reason, key).toMatch(/\w{3}/);
    }
    expect(report.plan.threads?.value).toBeLessThanOrEqual(Number(report.facts.physicalCores));
    expect(report.plan.threads?.value).toBeLessThanOrEqual(2);
  });
});

describe("bad model files exit 2 with the file and the problem, never by a signal", () => {
  const cases: [string, () => Promise<string> | string, RegExp][] = [
    [
      "a truncated GGUF",
      () => {
        const bytes = readFileSync(tiny);
        const file = path.join(dir, "truncated.gguf");
        writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
        return file;
      },
      /IA_ERR_GGUF_TRUNCATED/,
    ],
    [
      "random bytes",
      () => {
        const file = path.join(dir, "random.gguf");
        writeFileSync(file, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)));
        return file;
      },
      /IA_ERR_GGUF_MAGIC/,
    ],
    [
      "an empty file",
      () => {
        const file = path.join(dir, "empty.gguf");
        writeFileSync(file, "");
        return file;
      },
      /IA_ERR_GGUF_EMPTY/,
    ],
    [
      "a directory",
      () => {
        const file = path.join(dir, "a-directory.gguf");
        mkdirSync(file, { recursive: true });
        return file;
      },
      /IA_ERR_MODEL_NOT_FILE/,
    ],
    ["a missing path", () => path.join(dir, "no-such-model.gguf"), /IA_ERR_MODEL_NOT_FOUND/],
    [
      "a GGUF without qwen2.feed_forward_length",
      () => rewriteGguf(tiny, path.join(dir, "no-ffn.gguf"), (m) => m.delete("qwen2.feed_forward_length")),
      /IA_ERR_GGUF_METADATA.*qwen2\.feed_forward_length/,
    ],
    [
      "a GGUF without qwen2.attention.head_count",
      () => rewriteGguf(tiny, path.join(dir, "no-heads.gguf"), (m) => m.delete("qwen2.attention.head_count")),
      /IA_ERR_GGUF_METADATA.*qwen2\.attention\.head_count/,
    ],
  ];

  for (const [name, make, problem] of cases) {
    it(`ask refuses ${name}`, async () => {
      const file = await make();
      const result = await runAgent(["ask", "--model", file, ...quiet, "hello"]);
      expect(result.signal).toBeNull();
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(problem);
      expect(result.stderr).toContain(path.basename(file));
      expect(result.stdout).toBe("");
    });
  }

  it("models verify reports a bad file as a failed check (exit 3) and a good one as valid", async () => {
    const bad = await runAgent(["models", "verify", path.join(dir, "random.gguf")]);
    expect(bad.code).toBe(3);
    expect(bad.stdout).toContain("IA_ERR_GGUF_MAGIC");
    const good = await runAgent(["models", "verify", tiny]);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/qwen2/);
  });
});

describe("a signal while the model loads", () => {
  it.each(["SIGTERM", "SIGINT"] as const)(
    "%s stops run cleanly (exit 0) once the load is done; it never dies by the signal",
    async (signal) => {
      const agent = spawnAgent([
        "--model",
        tiny,
        "--mlock",
        "off",
        "--mqtt",
        "off",
        "--state-dir",
        path.join(dir, "state"),
        "--log-level",
        "info",
      ]);
      await waitUntil(() => agent.output().includes('"loading model"'), { what: "the agent to start loading", timeoutMs: 30_000 });
      agent.child.kill(signal);
      const exited = await agent.exited;
      expect(exited).toEqual({ code: 0, signal: null });
      expect(agent.output()).toContain("stopping as soon as the model has loaded");
    },
  );
});
