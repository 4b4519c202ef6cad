import { existsSync } from "node:fs";
import path from "node:path";
import type { CatalogEntry } from "../../models/catalog.js";
import { catalogEntryForFileName, draftsFor } from "../../models/catalog.js";
import { validateModelFile } from "../../models/gguf/ggufValidator.js";
import { resolveModel } from "../../models/modelResolver.js";
import type { ResolvedModel } from "../../models/modelResolver.js";
import type { Logger } from "../../common/logger.js";
import type { AgentConfig } from "../config/config.js";
import type { DraftCandidate } from "../host/resourcePolicy.js";

/**
 * The draft model the resource policy weighs for speculative decoding: the file `--draft`
 * names (resolved and validated like `--model`, downloaded if it is a catalog id), or with
 * `--draft auto` the catalog's draft for the model, present in the models directory or not
 * (never downloaded unasked). The policy decides whether it is used (speculationDecision.ts).
 */

export interface ResolvedDraft {
  candidate: DraftCandidate;
  /** The file, when present. */
  path: string | undefined;
}

/** The catalog's draft for a catalog model: the smallest one present, else the smallest one. */
export function catalogDraft(entry: CatalogEntry | undefined, modelsDir: string): ResolvedDraft | undefined {
  if (!entry) return undefined;
  const drafts = draftsFor(entry);
  const present = drafts.find((draft) => existsSync(path.resolve(modelsDir, draft.fileName)));
  const chosen = present ?? drafts[0];
  if (!chosen) return undefined;
  return {
    candidate: { label: chosen.id, footprint: chosen.footprint, present: present !== undefined, catalogId: chosen.id },
    path: present ? path.resolve(modelsDir, present.fileName) : undefined,
  };
}

/** What `--draft` asks for, for this model; undefined with `off`, or `auto` for a model the catalog pairs with no draft. */
export async function resolveDraft(config: AgentConfig, model: ResolvedModel, logger: Logger): Promise<ResolvedDraft | undefined> {
  const wanted = config.draft.trim();
  if (wanted === "off") return undefined;
  if (wanted === "auto") return catalogDraft(model.catalogEntry ?? catalogEntryForFileName(model.path), config.modelsDir);
  const draft = await resolveModel(wanted, { modelsDir: config.modelsDir, mirror: config.modelMirror, logger });
  const summary = await validateModelFile(draft.path);
  return {
    candidate: {
      label: draft.label,
      present: true,
      footprint: {
        id: draft.label,
        label: draft.label,
        fileBytes: summary.fileBytes,
        kvBytesPerToken: summary.kvBytesPerToken,
        trainedContextLength: summary.contextLength,
      },
    },
    path: draft.path,
  };
}
