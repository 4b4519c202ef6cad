import type { HostFacts } from "../hostFacts.js";
import type { ModelFootprint } from "../../../models/modelFootprint.js";

export type { ModelFootprint };

/** The resource policy's input and output (resourcePolicy.ts); the decisions in this folder fill the plan. */

export type DeploymentShape = "on-instrument" | "beside-instrument";

/** A catalog model the policy may choose. Catalog entries fit this shape plus `available`. */
export interface ModelCandidate {
  id: string;
  /** Models that differ only in quantization share this, e.g. `qwen2.5-0.5b-instruct`. */
  baseModel: string;
  /** Quantization, e.g. `Q4_K_M` or `Q8_0`. */
  quant: string;
  parameterCount: number;
  footprint: ModelFootprint;
  /** The file is present or can be downloaded. */
  available: boolean;
}

export interface ResourceRequest {
  /** Generation threads. */
  threads: number | "auto";
  mlock: "on" | "off" | "auto";
  /** Context size in tokens per sequence. */
  contextSize: number | "auto";
  /** Memory left for the instrument and OS. Defaults to the shape's reserve. */
  reserveMemMiB?: number | undefined;
  /** Cores left for the instrument and OS. Defaults to the shape's reserve. */
  reserveCores?: number | undefined;
  /** Sequences generated at once. Defaults to `auto`. */
  parallelSequences?: number | "auto" | undefined;
  /** `--draft`, `--lookup`, `--draft-max`. Defaults to both off. */
  speculation?: { draft: string; lookup: "on" | "off" | "auto"; draftMax: number } | undefined;
}

export interface PlanInput {
  facts: HostFacts;
  shape: DeploymentShape;
  requested: ResourceRequest;
  /** One model to size, or catalog candidates to choose the largest that fits from. */
  model: ModelFootprint | { candidates: readonly ModelCandidate[] };
  /** The draft `--draft` names, or the catalog's draft for the model with `--draft auto`; none when there is none. */
  draftCandidate?: DraftCandidate | undefined;
}

export interface Decision<T> {
  value: T;
  reason: string;
}

export interface ResourcePlan {
  model: { id: string; label: string; reason: string };
  threads: Decision<number>;
  mlock: Decision<boolean>;
  contextSize: Decision<number>;
  parallelSequences: Decision<number>;
  /** Speculative decoding: a draft model, prompt lookup, or neither. */
  speculation: Decision<SpeculationPlan>;
  reserve: { memMiB: number; cores: number; reason: string };
  memory: {
    /** Available memory minus the reserve. */
    budgetBytes: number;
    modelBytes: number;
    kvBytes: number;
    computeOverheadBytes: number;
    /** modelBytes + kvBytes + computeOverheadBytes. */
    totalBytes: number;
    fits: boolean;
    reason: string;
  };
  warnings: string[];
  /** What the operator may want to know but need not act on (logged at info), such as `--mlock auto` running unlocked. */
  notices: string[];
}

/** Speculative decoding (speculationDecision.ts). */
export type SpeculationKind = "draft" | "lookup" | "off";

export interface SpeculationPlan {
  kind: SpeculationKind;
  /** The draft model (catalog id or file) when `kind` is `draft`, else null. */
  draft: string | null;
  /** Tokens the draft proposes per check (`--draft-max`). */
  draftMax: number;
}

/** The draft the caller found for this plan: the one named by `--draft`, or the catalog's pairing for `auto`. */
export interface DraftCandidate {
  /** Catalog id or file name, as people see it. */
  label: string;
  footprint: ModelFootprint;
  /** false: `--draft auto` found the catalog's draft, but not in the models directory. */
  present: boolean;
  /** `models pull <id>` fetches it (for the reason when it is not present). */
  catalogId?: string | undefined;
}
