import { AgentError } from "../common/errors.js";
import type { ModelFootprint } from "./modelFootprint.js";

/**
 * The catalog of real Qwen GGUF builds (docs/ARCHITECTURE.md#facts-the-code-relies-on, "Real Qwen GGUF files"). Sizes and
 * SHA-256 come from public catalogs that pin the official files, not from the hub itself:
 * the download code verifies them. Where a hash is null it is recorded at first download.
 */

export type QuantType = "Q4_K_M" | "Q8_0";

export interface CatalogEntry {
  /** Lower-case id, e.g. `qwen2.5-0.5b-instruct-q4_k_m`. */
  id: string;
  /** Name shown to people, e.g. "Qwen2.5 0.5B Instruct Q4_K_M". */
  label: string;
  /** Entries that differ only in quantization share it, e.g. `qwen2.5-0.5b-instruct`. */
  baseModel: string;
  family: "Qwen2.5" | "Qwen3";
  /** Source in node-llama-cpp's form `hf:<user>/<repo>/<file>`. */
  uri: string;
  fileName: string;
  sizeBytes: number;
  /** true when sizeBytes is only known to be about right (checked at download). */
  sizeApproximate: boolean;
  /** Lower-case hex SHA-256 of the file; null = recorded at first download, then enforced. */
  sha256: string | null;
  /** SPDX id where there is one. */
  licence: "Apache-2.0" | "Qwen-Research";
  /** What the licence means for a lab, when it restricts use. */
  licenceNote: string | null;
  /** `general.architecture` in the GGUF. */
  architecture: "qwen2" | "qwen3";
  quant: QuantType;
  /** Total parameters including (tied) embeddings, as the model card rounds them. */
  parameterCount: number;
  layers: number;
  attentionHeads: number;
  kvHeads: number;
  headDim: number;
  embeddingLength: number;
  vocabularySize: number;
  trainedContextLength: number;
  /** KV cache bytes per token: 2 (K and V) x layers x KV heads x head dim x 2 bytes (F16). */
  kvBytesPerToken: number;
  /** What the resource policy sizes memory with. */
  footprint: ModelFootprint;
}

const QWEN_VOCABULARY = 151_936;
const F16_BYTES = 2;

interface Architecture {
  family: CatalogEntry["family"];
  architecture: CatalogEntry["architecture"];
  baseModel: string;
  labelBase: string;
  parameterCount: number;
  layers: number;
  attentionHeads: number;
  kvHeads: number;
  headDim: number;
  embeddingLength: number;
  trainedContextLength: number;
  licence: CatalogEntry["licence"];
  licenceNote: string | null;
}

const qwen25 = (
  size: string,
  p: Omit<Architecture, "family" | "architecture" | "baseModel" | "labelBase" | "trainedContextLength" | "licence" | "licenceNote">,
  research = false,
): Architecture => ({
  family: "Qwen2.5",
  architecture: "qwen2",
  baseModel: `qwen2.5-${size}-instruct`,
  labelBase: `Qwen2.5 ${size.toUpperCase()} Instruct`,
  trainedContextLength: 32_768,
  licence: research ? "Qwen-Research" : "Apache-2.0",
  licenceNote: research ? "Qwen Research License: non-commercial use only; commercial use needs Qwen's permission" : null,
  ...p,
});

const qwen3 = (
  size: string,
  p: Omit<Architecture, "family" | "architecture" | "baseModel" | "labelBase" | "trainedContextLength" | "licence" | "licenceNote">,
): Architecture => ({
  family: "Qwen3",
  architecture: "qwen3",
  baseModel: `qwen3-${size}`,
  labelBase: `Qwen3 ${size.toUpperCase()}`,
  trainedContextLength: 40_960,
  licence: "Apache-2.0",
  licenceNote: null,
  ...p,
});

// Shapes from each model's config.json (Qwen2.5: 2 KV heads; Qwen3: 8 KV heads, head_dim 128).
const ARCH = {
  "qwen2.5-0.5b": qwen25("0.5b", {
    parameterCount: 494_000_000,
    layers: 24,
    attentionHeads: 14,
    kvHeads: 2,
    headDim: 64,
    embeddingLength: 896,
  }),
  "qwen2.5-1.5b": qwen25("1.5b", {
    parameterCount: 1_540_000_000,
    layers: 28,
    attentionHeads: 12,
    kvHeads: 2,
    headDim: 128,
    embeddingLength: 1536,
  }),
  "qwen2.5-3b": qwen25(
    "3b",
    { parameterCount: 3_090_000_000, layers: 36, attentionHeads: 16, kvHeads: 2, headDim: 128, embeddingLength: 2048 },
    true,
  ),
  "qwen3-0.6b": qwen3("0.6b", {
    parameterCount: 596_000_000,
    layers: 28,
    attentionHeads: 16,
    kvHeads: 8,
    headDim: 128,
    embeddingLength: 1024,
  }),
  "qwen3-1.7b": qwen3("1.7b", {
    parameterCount: 1_720_000_000,
    layers: 28,
    attentionHeads: 16,
    kvHeads: 8,
    headDim: 128,
    embeddingLength: 2048,
  }),
  "qwen3-4b": qwen3("4b", {
    parameterCount: 4_020_000_000,
    layers: 36,
    attentionHeads: 32,
    kvHeads: 8,
    headDim: 128,
    embeddingLength: 2560,
  }),
} as const satisfies Record<string, Architecture>;

interface FileSpec {
  arch: Architecture;
  quant: QuantType;
  uri: string;
  sizeBytes: number;
  sizeApproximate?: boolean;
  sha256: string | null;
}

function makeEntry(spec: FileSpec): CatalogEntry {
  const { arch } = spec;
  const id = `${arch.baseModel}-${spec.quant.toLowerCase()}`;
  const label = `${arch.labelBase} ${spec.quant}`;
  const fileName = spec.uri.split("#")[0]?.split("/").at(-1) ?? "";
  const kvBytesPerToken = 2 * arch.layers * arch.kvHeads * arch.headDim * F16_BYTES;
  return Object.freeze({
    id,
    label,
    baseModel: arch.baseModel,
    family: arch.family,
    uri: spec.uri,
    fileName,
    sizeBytes: spec.sizeBytes,
    sizeApproximate: spec.sizeApproximate ?? false,
    sha256: spec.sha256,
    licence: arch.licence,
    licenceNote: arch.licenceNote,
    architecture: arch.architecture,
    quant: spec.quant,
    parameterCount: arch.parameterCount,
    layers: arch.layers,
    attentionHeads: arch.attentionHeads,
    kvHeads: arch.kvHeads,
    headDim: arch.headDim,
    embeddingLength: arch.embeddingLength,
    vocabularySize: QWEN_VOCABULARY,
    trainedContextLength: arch.trainedContextLength,
    kvBytesPerToken,
    footprint: Object.freeze({
      id,
      label,
      fileBytes: spec.sizeBytes,
      kvBytesPerToken,
      trainedContextLength: arch.trainedContextLength,
      vocabularySize: QWEN_VOCABULARY,
      attentionHeadCount: arch.attentionHeads,
    }),
  });
}

const CATALOG: readonly CatalogEntry[] = Object.freeze(
  [
    {
      arch: ARCH["qwen2.5-0.5b"],
      quant: "Q4_K_M",
      uri: "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf",
      sizeBytes: 491_400_032,
      sha256: "74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db",
    },
    {
      arch: ARCH["qwen2.5-0.5b"],
      quant: "Q8_0",
      uri: "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q8_0.gguf",
      sizeBytes: 675_710_816,
      sha256: "ca59ca7f13d0e15a8cfa77bd17e65d24f6844b554a7b6c12e07a5f89ff76844e",
    },
    {
      arch: ARCH["qwen2.5-1.5b"],
      quant: "Q4_K_M",
      uri: "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf",
      sizeBytes: 1_117_320_736,
      sha256: "6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e",
    },
    {
      arch: ARCH["qwen2.5-1.5b"],
      quant: "Q8_0",
      uri: "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q8_0.gguf",
      sizeBytes: 1_894_532_128,
      sizeApproximate: true,
      sha256: "d7efb072e7724d25048a4fda0a3e10b04bdef5d06b1403a1c93bd9f1240a63c8",
    },
    {
      arch: ARCH["qwen2.5-3b"],
      quant: "Q4_K_M",
      uri: "hf:Qwen/Qwen2.5-3B-Instruct-GGUF/qwen2.5-3b-instruct-q4_k_m.gguf",
      sizeBytes: 2_104_932_768,
      sha256: "626b4a6678b86442240e33df819e00132d3ba7dddfe1cdc4fbb18e0a9615c62d",
    },
    {
      arch: ARCH["qwen3-0.6b"],
      quant: "Q8_0",
      uri: "hf:Qwen/Qwen3-0.6B-GGUF/Qwen3-0.6B-Q8_0.gguf",
      sizeBytes: 639_446_688,
      sha256: "9465e63a22add5354d9bb4b99e90117043c7124007664907259bd16d043bb031",
    },
    {
      arch: ARCH["qwen3-1.7b"],
      quant: "Q8_0",
      uri: "hf:Qwen/Qwen3-1.7B-GGUF/Qwen3-1.7B-Q8_0.gguf",
      sizeBytes: 1_834_426_016,
      sha256: "061b54daade076b5d3362dac252678d17da8c68f07560be70818cace6590cb1a",
    },
    {
      // Qwen publishes no Q4_K_M of Qwen3-1.7B; ggml-org's is built from the same weights.
      arch: ARCH["qwen3-1.7b"],
      quant: "Q4_K_M",
      uri: "hf:ggml-org/Qwen3-1.7B-GGUF/Qwen3-1.7B-Q4_K_M.gguf",
      sizeBytes: 1_282_439_264,
      sha256: "d2387ca2dbfee2ffabce7120d3770dadca0b293052bc2f0e138fdc940d9bc7b5",
    },
    {
      arch: ARCH["qwen3-4b"],
      quant: "Q4_K_M",
      uri: "hf:Qwen/Qwen3-4B-GGUF/Qwen3-4B-Q4_K_M.gguf",
      sizeBytes: 2_497_280_256,
      sha256: "7485fe6f11af29433bc51cab58009521f205840f5b4ae3a32fa7f92e8534fdf5",
    },
    {
      arch: ARCH["qwen3-4b"],
      quant: "Q8_0",
      uri: "hf:Qwen/Qwen3-4B-GGUF/Qwen3-4B-Q8_0.gguf",
      sizeBytes: 4_280_404_704,
      sha256: "8c2f07f26af9747e41988551106f149b03eb9b5cb6df636027b6bf6278473300",
    },
  ].map((spec) => makeEntry(spec as FileSpec)),
);

/** Every catalog entry, smallest file first. */
export function listCatalog(): readonly CatalogEntry[] {
  return [...CATALOG].sort((a, b) => a.sizeBytes - b.sizeBytes);
}

/** The entry with this id, compared without regard to case; undefined when none. */
export function findCatalogEntry(id: string): CatalogEntry | undefined {
  const wanted = id.trim().toLowerCase();
  return CATALOG.find((entry) => entry.id === wanted);
}

/** The entry whose file this is (a bare name or a path); exact name first, then without regard to case. */
export function catalogEntryForFileName(name: string): CatalogEntry | undefined {
  const base = name.split(/[\\/]/).at(-1) ?? name;
  return CATALOG.find((entry) => entry.fileName === base) ?? CATALOG.find((entry) => entry.fileName.toLowerCase() === base.toLowerCase());
}

export const HUGGING_FACE_BASE_URL = "https://huggingface.co";

function mirrorBase(mirrorBaseUrl: string): string {
  let url: URL;
  try {
    url = new URL(mirrorBaseUrl);
  } catch (error) {
    throw new AgentError("IA_ERR_CONFIG", `model mirror '${mirrorBaseUrl}' is not a URL: expected e.g. http://models.lab.local/hf`, {
      cause: error,
    });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new AgentError("IA_ERR_CONFIG", `model mirror '${mirrorBaseUrl}' uses ${url.protocol}: expected an http:// or https:// base URL`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/**
 * `hf:<user>/<repo>/<file>[#<branch>]` to `https://huggingface.co/<user>/<repo>/resolve/<branch>/<file>`
 * (branch `main` when absent). With a mirror base URL (a lab's own HTTP server holding the
 * same paths) the mirror replaces `https://huggingface.co`.
 */
export function resolveHfUri(uri: string, mirrorBaseUrl?: string): string {
  const match = /^hf:(?:\/\/)?([^#]*)(?:#(.*))?$/i.exec(uri.trim());
  const pathPart = match?.[1] ?? "";
  const branch = match?.[2] ?? "main";
  const segments = pathPart.split("/");
  const [user, repo, ...file] = segments;
  if (match === null || segments.some((s) => s === "") || user === undefined || repo === undefined || branch === "") {
    throw new AgentError(
      "IA_ERR_USAGE",
      `'${uri}' is not an hf: URI: expected hf:<user>/<repo>/<file>.gguf, optionally followed by #<branch>`,
    );
  }
  if (file.length === 0) {
    throw new AgentError(
      "IA_ERR_USAGE",
      `'${uri}' names a repository${repo.includes(":") ? " and a quantization" : ""} but no file: expected hf:<user>/<repo>/<file>.gguf (the hub's file list is not read)`,
    );
  }
  const base = mirrorBaseUrl === undefined || mirrorBaseUrl === "" ? HUGGING_FACE_BASE_URL : mirrorBase(mirrorBaseUrl);
  const encodedFile = file.map(encodeURIComponent).join("/");
  return `${base}/${encodeURIComponent(user)}/${encodeURIComponent(repo)}/resolve/${encodeURIComponent(branch)}/${encodedFile}`;
}

/**
 * Whether a catalog model calls functions well enough to be given instrument tools by
 * default (`--tools auto`): Qwen's own model cards claim it for Qwen2.5 from 1.5B and for
 * every Qwen3; the 0.5B answers tool prompts with malformed or invented calls.
 */
export function canCallTools(entry: CatalogEntry): boolean {
  return entry.family === "Qwen3" || entry.parameterCount >= 1_200_000_000;
}

/**
 * The catalog's draft models for speculative decoding with this entry (`--draft auto`),
 * smallest file first: Qwen2.5 0.5B for the larger Qwen2.5 models and Qwen3 0.6B for the
 * larger Qwen3 ones, each of its own family's vocabulary. None for the drafts themselves.
 */
export function draftsFor(entry: CatalogEntry): CatalogEntry[] {
  const draftBase = entry.family === "Qwen3" ? "qwen3-0.6b" : "qwen2.5-0.5b-instruct";
  if (entry.baseModel === draftBase) return [];
  return listCatalog().filter((candidate) => candidate.baseModel === draftBase);
}
