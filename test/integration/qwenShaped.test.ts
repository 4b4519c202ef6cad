import { rmSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readGguf } from "../../models/gguf/ggufReader.js";
import { runAgent } from "../helpers/bundle.js";
import { tempDir } from "../helpers/models.js";

// A 530 MB random-weight file with the tensor shapes of Qwen2.5-0.5B-Instruct, written by
// the bundle's own `models synth`, read back, and generated with by the bundle's `ask`.
const dir = tempDir("iagent-qwen-");
const file = path.join(dir, "qwen2.5-0.5b-q8_0.gguf");

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("models synth --shape qwen2.5-0.5b --type q8_0", () => {
  it("writes the exact tensor shapes of Qwen2.5-0.5B-Instruct", async () => {
    const synth = await runAgent(["models", "synth", "--shape", "qwen2.5-0.5b", "--type", "q8_0", "--out", file], { timeoutMs: 180_000 });
    expect(synth.code, synth.stderr).toBe(0);

    const gguf = await readGguf(file);
    const meta = (key: string) => gguf.metadata.get(key)?.value;
    expect(meta("general.architecture")).toBe("qwen2");
    expect(meta("qwen2.block_count")).toBe(24);
    expect(meta("qwen2.embedding_length")).toBe(896);
    expect(meta("qwen2.feed_forward_length")).toBe(4864);
    expect(meta("qwen2.attention.head_count")).toBe(14);
    expect(meta("qwen2.attention.head_count_kv")).toBe(2);

    const shape = (name: string) => gguf.tensors.find((t) => t.name === name)?.dims;
    expect(shape("token_embd.weight")).toEqual([896, 151936]);
    expect(shape("blk.0.attn_q.weight")).toEqual([896, 896]);
    expect(shape("blk.0.attn_k.weight")).toEqual([896, 128]);
    expect(shape("blk.0.attn_v.weight")).toEqual([896, 128]);
    expect(shape("blk.0.attn_q.bias")).toEqual([896]);
    expect(shape("blk.0.attn_output.weight")).toEqual([896, 896]);
    expect(shape("blk.23.ffn_gate.weight")).toEqual([896, 4864]);
    expect(shape("blk.23.ffn_up.weight")).toEqual([896, 4864]);
    expect(shape("blk.23.ffn_down.weight")).toEqual([4864, 896]);
    expect(shape("blk.24.ffn_down.weight")).toBeUndefined();
    expect(gguf.tensors.filter((t) => t.name.startsWith("blk.")).length).toBe(24 * 12);
    const tokens = gguf.metadata.get("tokenizer.ggml.tokens")?.value as { items: unknown[] };
    expect(tokens.items.length).toBe(151936);
  });

  it("ask generates with it", async () => {
    const result = await runAgent(
      [
        "ask",
        "--model",
        file,
        "--threads",
        "2",
        "--mlock",
        "off",
        "--context",
        "1024",
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        "--json",
        "--log-level",
        "error",
        "What is RBW?",
      ],
      { timeoutMs: 120_000 },
    );
    expect(result.code, result.stderr).toBe(0);
    const answer = JSON.parse(result.stdout) as { usage: { completionTokens: number }; finishReason: string };
    expect(answer.usage.completionTokens).toBe(8);
    expect(answer.finishReason).toBe("length");
  });
});
