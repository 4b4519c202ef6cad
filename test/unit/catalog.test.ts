import { describe, expect, it } from "vitest";
import { AgentError } from "../../common/errors.js";
import { canCallTools, catalogEntryForFileName, findCatalogEntry, listCatalog, resolveHfUri } from "../../models/catalog.js";

const EXPECTED_IDS = [
  "qwen2.5-0.5b-instruct-q4_k_m",
  "qwen2.5-0.5b-instruct-q8_0",
  "qwen2.5-1.5b-instruct-q4_k_m",
  "qwen2.5-1.5b-instruct-q8_0",
  "qwen2.5-3b-instruct-q4_k_m",
  "qwen3-0.6b-q8_0",
  "qwen3-1.7b-q8_0",
  "qwen3-1.7b-q4_k_m",
  "qwen3-4b-q4_k_m",
  "qwen3-4b-q8_0",
];

describe("catalog", () => {
  const entries = listCatalog();

  it("holds the ten real builds, ids and file names unique", () => {
    expect(entries.map((e) => e.id).sort()).toEqual([...EXPECTED_IDS].sort());
    expect(new Set(entries.map((e) => e.fileName.toLowerCase())).size).toBe(entries.length);
  });

  it("gives every entry a URI, a file name matching it, a size and a well-formed hash", () => {
    for (const e of entries) {
      expect(e.uri, e.id).toMatch(/^hf:[\w.-]+\/[\w.-]+-GGUF\/[\w.-]+\.gguf$/);
      expect(e.uri.endsWith(`/${e.fileName}`), e.id).toBe(true);
      expect(e.sizeBytes, e.id).toBeGreaterThan(100_000_000);
      expect(e.sha256 === null || /^[0-9a-f]{64}$/.test(e.sha256), e.id).toBe(true);
      expect(e.footprint.fileBytes).toBe(e.sizeBytes);
      expect(e.footprint.id).toBe(e.id);
      expect(e.id.endsWith(e.quant.toLowerCase())).toBe(true);
    }
  });

  it("marks only the 1.5B Q8_0 size as approximate", () => {
    expect(entries.filter((e) => e.sizeApproximate).map((e) => e.id)).toEqual(["qwen2.5-1.5b-instruct-q8_0"]);
  });

  it("computes KV bytes per token from the real architectures (F16 K and V)", () => {
    const kv = (id: string) => findCatalogEntry(id)?.kvBytesPerToken;
    expect(kv("qwen2.5-0.5b-instruct-q4_k_m")).toBe(2 * 24 * 2 * 64 * 2); // 12,288
    expect(kv("qwen2.5-1.5b-instruct-q8_0")).toBe(2 * 28 * 2 * 128 * 2); // 28,672
    expect(kv("qwen2.5-3b-instruct-q4_k_m")).toBe(2 * 36 * 2 * 128 * 2); // 36,864
    expect(kv("qwen3-0.6b-q8_0")).toBe(2 * 28 * 8 * 128 * 2); // 114,688
    expect(kv("qwen3-1.7b-q4_k_m")).toBe(2 * 28 * 8 * 128 * 2);
    expect(kv("qwen3-4b-q8_0")).toBe(2 * 36 * 8 * 128 * 2); // 147,456
    for (const e of entries) expect(e.footprint.kvBytesPerToken).toBe(e.kvBytesPerToken);
  });

  it("records trained context, licence and architecture per family", () => {
    for (const e of entries) {
      expect(e.trainedContextLength).toBe(e.family === "Qwen2.5" ? 32_768 : 40_960);
      expect(e.architecture).toBe(e.family === "Qwen2.5" ? "qwen2" : "qwen3");
    }
    expect(findCatalogEntry("qwen2.5-3b-instruct-q4_k_m")?.licence).toBe("Qwen-Research");
    expect(findCatalogEntry("qwen3-4b-q4_k_m")?.licence).toBe("Apache-2.0");
    expect(findCatalogEntry("qwen3-1.7b-q4_k_m")?.uri).toBe("hf:ggml-org/Qwen3-1.7B-GGUF/Qwen3-1.7B-Q4_K_M.gguf");
  });

  it("finds entries by id without regard to case, and nothing for unknown ids", () => {
    expect(findCatalogEntry("QWEN3-0.6B-Q8_0")?.fileName).toBe("Qwen3-0.6B-Q8_0.gguf");
    expect(findCatalogEntry("qwen3-0.6b")).toBeUndefined();
    expect(findCatalogEntry("nope")).toBeUndefined();
  });

  it("finds entries by file name or path", () => {
    expect(catalogEntryForFileName("qwen2.5-0.5b-instruct-q8_0.gguf")?.id).toBe("qwen2.5-0.5b-instruct-q8_0");
    expect(catalogEntryForFileName("/srv/models/Qwen3-4B-Q4_K_M.gguf")?.id).toBe("qwen3-4b-q4_k_m");
    expect(catalogEntryForFileName("C:\\models\\qwen3-4b-q4_k_m.GGUF")?.id).toBe("qwen3-4b-q4_k_m");
    expect(catalogEntryForFileName("other.gguf")).toBeUndefined();
  });
});

describe("resolveHfUri", () => {
  const uri = "hf:Qwen/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0.gguf";

  it("resolves to the hub's main branch", () => {
    expect(resolveHfUri(uri)).toBe("https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q8_0.gguf");
  });

  it("honours a #branch", () => {
    expect(resolveHfUri(`${uri}#v1.1`)).toBe("https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/resolve/v1.1/Qwen3-0.6B-Q8_0.gguf");
  });

  it("puts a lab mirror in place of huggingface.co, keeping its path prefix", () => {
    expect(resolveHfUri(uri, "http://models.lab.local:8080/hf/")).toBe(
      "http://models.lab.local:8080/hf/Qwen/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q8_0.gguf",
    );
    expect(resolveHfUri(`${uri}#dev`, "https://mirror.example")).toBe(
      "https://mirror.example/Qwen/Qwen3-0.6B-GGUF/resolve/dev/Qwen3-0.6B-Q8_0.gguf",
    );
  });

  it("keeps sub-folders of the file path", () => {
    expect(resolveHfUri("hf:org/repo/sub/dir/m.gguf")).toBe("https://huggingface.co/org/repo/resolve/main/sub/dir/m.gguf");
  });

  it("resolves every catalog URI", () => {
    for (const e of listCatalog()) expect(resolveHfUri(e.uri)).toMatch(new RegExp(`/resolve/main/${e.fileName.replace(/\./g, "\\.")}$`));
  });

  it("refuses malformed URIs with a code and the bad value", () => {
    for (const bad of ["Qwen/repo/file.gguf", "hf:Qwen", "hf:Qwen//x.gguf", "hf:Qwen/repo/x.gguf#"]) {
      let caught: unknown;
      try {
        resolveHfUri(bad);
      } catch (error) {
        caught = error;
      }
      expect(caught, bad).toBeInstanceOf(AgentError);
      expect((caught as AgentError).code).toBe("IA_ERR_USAGE");
      expect((caught as AgentError).message).toContain(bad);
    }
  });

  it("explains that the repo:quant form names no file", () => {
    expect(() => resolveHfUri("hf:Qwen/Qwen3-0.6B-GGUF:Q8_0")).toThrow(/quantization but no file/);
  });

  it("refuses a mirror that is not an http(s) URL", () => {
    expect(() => resolveHfUri(uri, "ftp://mirror")).toThrow(/expected an http/);
    expect(() => resolveHfUri(uri, "not a url")).toThrow(/not a URL/);
  });
});

describe("canCallTools (--tools auto)", () => {
  it("gives tools to Qwen2.5 from 1.5B and to every Qwen3, not to Qwen2.5 0.5B", () => {
    const byBase = new Map(listCatalog().map((entry) => [entry.baseModel, canCallTools(entry)]));
    expect(byBase.get("qwen2.5-0.5b-instruct")).toBe(false);
    expect(byBase.get("qwen2.5-1.5b-instruct")).toBe(true);
    expect(byBase.get("qwen2.5-3b-instruct")).toBe(true);
    expect(byBase.get("qwen3-0.6b")).toBe(true);
  });
});
