import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { AgentError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { createProgressBar } from "../common/progressBar.js";
import { findCatalogEntry, resolveHfUri } from "./catalog.js";
import type { CatalogEntry } from "./catalog.js";
import { downloadModelFile } from "./modelDownload.js";
import { ModelStore } from "./modelStore.js";
import { writeScriptedModel } from "./synth/scriptedModel.js";

/** A new name with the scripted demo, so a random-weight demo file left by an older version is not reused. */
export const DEMO_MODEL_FILE = "demo-scripted.gguf";

/** The demo model's whole answer: what it is, and the one command that fetches a real model. */
export const DEMO_REPLY =
  "I am the demo model of instrument-agent: a small scripted file with no knowledge, so this is the only answer I give. " +
  "For real answers, fetch a model with: instrument-agent models pull qwen2.5-0.5b-instruct-q4_k_m";

export interface ResolvedModel {
  path: string;
  /** Catalog id, or the file name. */
  label: string;
  /** The demo model: a scripted file whose only answer says what it is. */
  isDemo: boolean;
  catalogEntry?: CatalogEntry;
}

export interface ResolveModelOptions {
  modelsDir: string;
  mirror?: string | undefined;
  logger: Logger;
  /** Where progress bars are drawn. Defaults to stderr. */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** `--model` values that name a file rather than a catalog id or URI. */
function looksLikePath(spec: string): boolean {
  return spec.includes("/") || spec.includes("\\") || spec.toLowerCase().endsWith(".gguf") || spec.startsWith(".");
}

/** Makes the demo model once (a scripted model under 1 MB that answers DEMO_REPLY) and reuses it after. */
export async function ensureDemoModel(options: ResolveModelOptions): Promise<ResolvedModel> {
  const file = path.resolve(options.modelsDir, DEMO_MODEL_FILE);
  if (!existsSync(file)) {
    await mkdir(options.modelsDir, { recursive: true });
    options.logger.info({ file }, "writing the demo model (scripted: it says what it is)");
    await writeScriptedModel({ reply: DEMO_REPLY, outPath: file });
  }
  return { path: file, label: "demo", isDemo: true };
}

interface Expected {
  sha256?: string | null | undefined;
  /** Exact size when known, so a wrong file is refused before it is downloaded. */
  sizeBytes?: number | undefined;
}

async function download(url: string, fileName: string, known: Expected, options: ResolveModelOptions, label: string): Promise<string> {
  const store = new ModelStore(options.modelsDir);
  await mkdir(options.modelsDir, { recursive: true });
  const bar = createProgressBar({ label: `downloading ${label}`, ...(options.progressStream ? { stream: options.progressStream } : {}) });
  const expected = known.sha256 ?? store.recordedChecksum(fileName)?.sha256;
  const result = await downloadModelFile({
    url,
    dirPath: options.modelsDir,
    fileName,
    ...(expected ? { expectedSha256: expected } : {}),
    ...(known.sizeBytes ? { expectedSizeBytes: known.sizeBytes } : {}),
    onProgress: (p) => bar.update(p.downloadedBytes, p.totalBytes),
  });
  bar.done(`downloaded ${label}`);
  if (!store.recordedChecksum(fileName)) await store.recordChecksum(fileName, { sha256: result.sha256, bytes: result.bytes, source: url });
  return result.path;
}

/**
 * Turns a `--model` value into a local file: a path as is; a catalog id, hf: URI or URL
 * from the models directory, downloading it when absent; `demo` synthesized on the spot.
 */
export async function resolveModel(spec: string, options: ResolveModelOptions): Promise<ResolvedModel> {
  if (spec === "demo") return ensureDemoModel(options);
  const entry = findCatalogEntry(spec);
  if (entry) {
    const local = path.resolve(options.modelsDir, entry.fileName);
    const file = existsSync(local)
      ? local
      : await download(
          resolveHfUri(entry.uri, options.mirror),
          entry.fileName,
          { sha256: entry.sha256, sizeBytes: entry.sizeApproximate ? undefined : entry.sizeBytes },
          options,
          entry.id,
        );
    return { path: file, label: entry.id, isDemo: false, catalogEntry: entry };
  }
  if (spec.startsWith("hf:") || /^https?:\/\//i.test(spec)) {
    const url = spec.startsWith("hf:") ? resolveHfUri(spec, options.mirror) : spec;
    const fileName = decodeURIComponent(new URL(url).pathname.split("/").pop() ?? "");
    if (!fileName) throw new AgentError("IA_ERR_MODEL_NOT_FOUND", `--model ${spec}: the URI names no file`);
    const local = path.resolve(options.modelsDir, fileName);
    const file = existsSync(local) ? local : await download(url, fileName, {}, options, fileName);
    return { path: file, label: fileName, isDemo: false };
  }
  if (looksLikePath(spec) || existsSync(spec)) {
    return { path: path.resolve(spec), label: path.basename(spec), isDemo: false };
  }
  throw new AgentError(
    "IA_ERR_MODEL_NOT_FOUND",
    `--model ${spec}: not a file, a catalog id, an hf: URI or an http(s) URL (catalog ids: instrument-agent models list; or --model demo)`,
  );
}

/** Whether a download source answers at all, so an offline host falls back quickly. */
export async function isReachable(url: string, timeoutMs = 4000): Promise<boolean> {
  try {
    const response = await fetch(url, { method: "HEAD", redirect: "follow", signal: AbortSignal.timeout(timeoutMs) });
    return response.ok;
  } catch {
    return false;
  }
}
