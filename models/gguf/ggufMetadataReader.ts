import type { AgentError, ErrorCode } from "../../common/errors.js";
import { GgufValueType, ggufValueTypeName } from "./ggufFormat.js";
import type { GgufFile, GgufMetadataEntry } from "./ggufFormat.js";

/** How a check refuses: a coded AgentError whose message names the file. */
export type Fail = (code: ErrorCode, message: string) => AgentError;

export type ScalarOf<T extends GgufValueType> = T extends typeof GgufValueType.STRING
  ? string
  : T extends typeof GgufValueType.BOOL
    ? boolean
    : number;

/** Typed metadata getters that fail the way llama.cpp's strict `get_key` would, but with a message. */
export class GgufMetadataReader {
  constructor(
    private readonly file: GgufFile,
    private readonly fail: Fail,
  ) {}

  entry(key: string): GgufMetadataEntry | undefined {
    return this.file.metadata.get(key);
  }

  required<T extends GgufValueType>(key: string, type: T, why: string): ScalarOf<T> {
    const value = this.optional(key, type, why);
    if (value === undefined) {
      throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is missing; expected a ${ggufValueTypeName(type)} (${why})`);
    }
    return value;
  }

  optional<T extends GgufValueType>(key: string, type: T, why = "as llama.cpp reads it"): ScalarOf<T> | undefined {
    const entry = this.file.metadata.get(key);
    if (entry === undefined) return undefined;
    if (entry.type !== type) {
      const found = entry.type === GgufValueType.ARRAY ? "an array" : `a ${ggufValueTypeName(entry.type)}`;
      throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is ${found}; expected a ${ggufValueTypeName(type)} (${why})`);
    }
    return entry.value as ScalarOf<T>;
  }

  positive(key: string, why: string, fallback?: number): number {
    const value =
      fallback === undefined ? this.required(key, GgufValueType.UINT32, why) : (this.optional(key, GgufValueType.UINT32, why) ?? fallback);
    if (value <= 0) throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is ${value}; expected a positive uint32 (${why})`);
    return value;
  }

  /** A string array's items, checked to be strings. */
  stringArray(key: string, why: string, required: boolean): string[] | undefined {
    const items = this.array(key, GgufValueType.STRING, why, required);
    return items as string[] | undefined;
  }

  array(key: string, itemType: GgufValueType, why: string, required: boolean): unknown[] | undefined {
    const entry = this.file.metadata.get(key);
    const expected = `an array of ${ggufValueTypeName(itemType)}`;
    if (entry === undefined) {
      if (required) throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is missing; expected ${expected} (${why})`);
      return undefined;
    }
    const value = entry.value;
    if (entry.type !== GgufValueType.ARRAY || typeof value !== "object" || value.itemType !== itemType) {
      const found = typeof value === "object" ? `an array of ${ggufValueTypeName(value.itemType)}` : `a ${ggufValueTypeName(entry.type)}`;
      throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is ${found}; expected ${expected} (${why})`);
    }
    return value.items;
  }
}
