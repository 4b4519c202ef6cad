import path from "node:path";
import { describe, expect, it } from "vitest";
import { readGguf } from "../../models/gguf/ggufReader.js";
import { validateModelFile } from "../../models/gguf/ggufValidator.js";
import { SCRIPTED_AFTER_TOOL_KEY, SCRIPTED_REPLY_KEY, writeScriptedModel } from "../../models/synth/scriptedModel.js";
import { bytesToUnicode } from "../../models/synth/syntheticVocabulary.js";
import { tempDir } from "../helpers/models.js";

// The writer's own checks; that llama.cpp really says the text is tested with the real
// runtime in test/integration/scriptedAnswers.test.ts and toolCalls.test.ts.

const dir = tempDir("iagent-scripted-unit-");
const byteText = bytesToUnicode();
const encoded = (text: string) => [...Buffer.from(text, "utf8")].map((b) => byteText[b]).join("");

async function tokensOf(file: string): Promise<{ tokens: string[]; metadata: Map<string, { value: unknown }> }> {
  const gguf = await readGguf(file);
  const tokens = (gguf.metadata.get("tokenizer.ggml.tokens")?.value as { items: string[] }).items;
  return { tokens, metadata: gguf.metadata as Map<string, { value: unknown }> };
}

describe("writeScriptedModel", () => {
  it("writes a valid Qwen2 GGUF whose vocabulary holds each piece once and whose metadata keeps the texts", async () => {
    const file = path.join(dir, "a.gguf");
    const result = await writeScriptedModel({ reply: "the the the end", afterToolText: "Done.", outPath: file });
    await expect(validateModelFile(file)).resolves.toMatchObject({ architecture: "qwen2" });
    const { tokens, metadata } = await tokensOf(file);
    expect(new Set(tokens).size).toBe(tokens.length); // llama.cpp aborts on a duplicate token text
    // A piece already used is joined to what follows until it is new: "the", " the", " the end".
    const pieces = ["the", " the", " the end"].map(encoded);
    for (const piece of pieces) expect(tokens).toContain(piece);
    expect(tokens).toContain("<tool_response>");
    expect(metadata.get(SCRIPTED_REPLY_KEY)?.value).toBe("the the the end");
    expect(metadata.get(SCRIPTED_AFTER_TOOL_KEY)?.value).toBe("Done.");
    expect(result.pieces).toBeGreaterThanOrEqual(4);
  });

  it("cuts a tool call where node-llama-cpp's grammar phases begin", async () => {
    const file = path.join(dir, "call.gguf");
    const call = '<tool_call>\n{"name": "scpi_query", "arguments": {"query": "*IDN?"}}\n</tool_call>';
    await writeScriptedModel({ reply: call, outPath: file });
    const { tokens } = await tokensOf(file);
    for (const piece of ['\n{"name": "', '", "arguments": ', '{"query": "*IDN?"}', "}\n"]) expect(tokens).toContain(encoded(piece));
  });

  it.each([
    [{ reply: "" }, "--reply is empty"],
    [{ reply: "x".repeat(20_000) }, "at most 16384"],
    [{ reply: "<tool_call> and <tool_call>" }, "can use <tool_call> once"],
    [{ reply: "say it say it" }, "repeats at the end"],
  ])("refuses %j with a usage error", async (options, message) => {
    await expect(writeScriptedModel({ ...options, outPath: path.join(dir, "bad.gguf") })).rejects.toMatchObject({
      code: "IA_ERR_USAGE",
      message: expect.stringContaining(message),
    });
  });
});
