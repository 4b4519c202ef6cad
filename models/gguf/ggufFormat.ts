/**
 * GGUF constants and types, as llama.cpp's `ggml/src/gguf.cpp` and `ggml/include/ggml.h`
 * (the copy bundled with node-llama-cpp 3.21.1) define them.
 */

/** "GGUF" read as a little-endian uint32. */
export const GGUF_MAGIC = 0x46554747;
export const GGUF_MAGIC_TEXT = "GGUF";
/** The versions llama.cpp reads; v1 was dropped long ago. */
export const GGUF_SUPPORTED_VERSIONS: readonly number[] = [2, 3];
export const GGUF_WRITE_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_ALIGNMENT_KEY = "general.alignment";
export const GGML_MAX_DIMS = 4;
/** ggml's GGML_MAX_NAME: tensor names must be shorter than this many bytes. */
export const GGML_MAX_NAME = 64;

export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

const VALUE_TYPE_NAMES: readonly string[] = [
  "uint8",
  "int8",
  "uint16",
  "int16",
  "uint32",
  "int32",
  "float32",
  "bool",
  "string",
  "array",
  "uint64",
  "int64",
  "float64",
];

export function isGgufValueType(value: number): value is GgufValueType {
  return Number.isInteger(value) && value >= 0 && value < VALUE_TYPE_NAMES.length;
}

export function ggufValueTypeName(type: number): string {
  return VALUE_TYPE_NAMES[type] ?? `unknown(${type})`;
}

/** Bytes one value of a fixed-size type takes; undefined for string and array. */
export function ggufFixedValueSize(type: GgufValueType): number | undefined {
  switch (type) {
    case GgufValueType.UINT8:
    case GgufValueType.INT8:
    case GgufValueType.BOOL:
      return 1;
    case GgufValueType.UINT16:
    case GgufValueType.INT16:
      return 2;
    case GgufValueType.UINT32:
    case GgufValueType.INT32:
    case GgufValueType.FLOAT32:
      return 4;
    case GgufValueType.UINT64:
    case GgufValueType.INT64:
    case GgufValueType.FLOAT64:
      return 8;
    default:
      return undefined;
  }
}

/** A metadata array: its item type and items (nested arrays are GgufArray items). */
export interface GgufArray {
  itemType: GgufValueType;
  items: GgufValue[];
}

/** uint64/int64 are bigint, other numbers are number. */
export type GgufValue = number | bigint | boolean | string | GgufArray;

/** One metadata value with its GGUF type, so it can be written back unchanged. */
export interface GgufMetadataEntry {
  type: GgufValueType;
  value: GgufValue;
}

export type GgufMetadata = Map<string, GgufMetadataEntry>;

export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
  NVFP4: 40,
  Q1_0: 41,
  Q2_0: 42,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

export interface GgmlTypeInfo {
  name: string;
  /** Elements per block. */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

/**
 * ggml's `type_traits` (ggml/src/ggml.c) for the type ids this llama.cpp knows
 * (`GGML_TYPE_COUNT` is 43); block sizes checked against `sizeof(block_*)` of the bundled
 * ggml-common.h.
 */
const GGML_TYPE_INFO = new Map<number, GgmlTypeInfo>([
  [GgmlType.F32, { name: "F32", blockSize: 1, typeSize: 4 }],
  [GgmlType.F16, { name: "F16", blockSize: 1, typeSize: 2 }],
  [GgmlType.Q4_0, { name: "Q4_0", blockSize: 32, typeSize: 18 }],
  [GgmlType.Q4_1, { name: "Q4_1", blockSize: 32, typeSize: 20 }],
  [GgmlType.Q5_0, { name: "Q5_0", blockSize: 32, typeSize: 22 }],
  [GgmlType.Q5_1, { name: "Q5_1", blockSize: 32, typeSize: 24 }],
  [GgmlType.Q8_0, { name: "Q8_0", blockSize: 32, typeSize: 34 }],
  [GgmlType.Q8_1, { name: "Q8_1", blockSize: 32, typeSize: 36 }],
  [GgmlType.Q2_K, { name: "Q2_K", blockSize: 256, typeSize: 84 }],
  [GgmlType.Q3_K, { name: "Q3_K", blockSize: 256, typeSize: 110 }],
  [GgmlType.Q4_K, { name: "Q4_K", blockSize: 256, typeSize: 144 }],
  [GgmlType.Q5_K, { name: "Q5_K", blockSize: 256, typeSize: 176 }],
  [GgmlType.Q6_K, { name: "Q6_K", blockSize: 256, typeSize: 210 }],
  [GgmlType.Q8_K, { name: "Q8_K", blockSize: 256, typeSize: 292 }],
  [GgmlType.IQ2_XXS, { name: "IQ2_XXS", blockSize: 256, typeSize: 66 }],
  [GgmlType.IQ2_XS, { name: "IQ2_XS", blockSize: 256, typeSize: 74 }],
  [GgmlType.IQ3_XXS, { name: "IQ3_XXS", blockSize: 256, typeSize: 98 }],
  [GgmlType.IQ1_S, { name: "IQ1_S", blockSize: 256, typeSize: 50 }],
  [GgmlType.IQ4_NL, { name: "IQ4_NL", blockSize: 32, typeSize: 18 }],
  [GgmlType.IQ3_S, { name: "IQ3_S", blockSize: 256, typeSize: 110 }],
  [GgmlType.IQ2_S, { name: "IQ2_S", blockSize: 256, typeSize: 82 }],
  [GgmlType.IQ4_XS, { name: "IQ4_XS", blockSize: 256, typeSize: 136 }],
  [GgmlType.I8, { name: "I8", blockSize: 1, typeSize: 1 }],
  [GgmlType.I16, { name: "I16", blockSize: 1, typeSize: 2 }],
  [GgmlType.I32, { name: "I32", blockSize: 1, typeSize: 4 }],
  [GgmlType.I64, { name: "I64", blockSize: 1, typeSize: 8 }],
  [GgmlType.F64, { name: "F64", blockSize: 1, typeSize: 8 }],
  [GgmlType.IQ1_M, { name: "IQ1_M", blockSize: 256, typeSize: 56 }],
  [GgmlType.BF16, { name: "BF16", blockSize: 1, typeSize: 2 }],
  [GgmlType.TQ1_0, { name: "TQ1_0", blockSize: 256, typeSize: 54 }],
  [GgmlType.TQ2_0, { name: "TQ2_0", blockSize: 256, typeSize: 66 }],
  [GgmlType.MXFP4, { name: "MXFP4", blockSize: 32, typeSize: 17 }],
  [GgmlType.NVFP4, { name: "NVFP4", blockSize: 64, typeSize: 36 }],
  [GgmlType.Q1_0, { name: "Q1_0", blockSize: 128, typeSize: 18 }],
  [GgmlType.Q2_0, { name: "Q2_0", blockSize: 64, typeSize: 18 }],
]);

/**
 * Type ids ggml once defined and has removed (commented out in ggml.h, zero block size in
 * `type_traits`): gguf.cpp refuses a tensor of any of them.
 */
const GGML_REMOVED_TYPES = new Map<number, string>([
  [4, "Q4_2"],
  [5, "Q4_3"],
  [31, "Q4_0_4_4"],
  [32, "Q4_0_4_8"],
  [33, "Q4_0_8_8"],
  [36, "IQ4_NL_4_4"],
  [37, "IQ4_NL_4_8"],
  [38, "IQ4_NL_8_8"],
]);

/** The name of a type id ggml has removed, or undefined. */
export function ggmlRemovedTypeName(type: number): string | undefined {
  return GGML_REMOVED_TYPES.get(type);
}

/** The type ids `ggmlTypeInfo` knows, ascending. */
export function knownGgmlTypes(): number[] {
  return [...GGML_TYPE_INFO.keys()].sort((a, b) => a - b);
}

/** Block size and bytes of a ggml type; undefined for a type number ggml does not know. */
export function ggmlTypeInfo(type: number): GgmlTypeInfo | undefined {
  return GGML_TYPE_INFO.get(type);
}

export function ggmlTypeName(type: number): string {
  return GGML_TYPE_INFO.get(type)?.name ?? `unknown(${type})`;
}

export function elementCount(dims: readonly number[]): number {
  let count = 1;
  for (const dim of dims) count *= dim;
  return count;
}

/**
 * Bytes a tensor's data takes, or undefined when the type is unknown or the first
 * dimension is not a whole number of blocks (llama.cpp refuses both).
 */
export function tensorByteSize(dims: readonly number[], type: number): number | undefined {
  const info = GGML_TYPE_INFO.get(type);
  if (info === undefined) return undefined;
  const rowLength = dims[0] ?? 1;
  if (rowLength % info.blockSize !== 0) return undefined;
  return (elementCount(dims) / info.blockSize) * info.typeSize;
}

export function alignUp(value: number, alignment: number): number {
  const rest = value % alignment;
  return rest === 0 ? value : value + alignment - rest;
}

/** One entry of the tensor table. `dims` are in ggml order (row length first). */
export interface GgufTensorInfo {
  name: string;
  dims: number[];
  /** ggml type number; may be one `ggmlTypeInfo` does not know. */
  type: number;
  /** Offset from the start of the data section. */
  offset: number;
  /** Data bytes, undefined when the type is unknown or the shape does not fit its blocks. */
  byteSize: number | undefined;
}

export interface GgufFile {
  path: string;
  version: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the tensor data section. */
  dataOffset: number;
  fileBytes: number;
}

/** llama.cpp's `LLAMA_FTYPE_*` (the `general.file_type` key) as the labels people use. */
export const LLAMA_FILE_TYPE_LABELS: ReadonlyMap<number, string> = new Map([
  [0, "F32"],
  [1, "F16"],
  [2, "Q4_0"],
  [3, "Q4_1"],
  [7, "Q8_0"],
  [8, "Q5_0"],
  [9, "Q5_1"],
  [10, "Q2_K"],
  [11, "Q3_K_S"],
  [12, "Q3_K_M"],
  [13, "Q3_K_L"],
  [14, "Q4_K_S"],
  [15, "Q4_K_M"],
  [16, "Q5_K_S"],
  [17, "Q5_K_M"],
  [18, "Q6_K"],
  [19, "IQ2_XXS"],
  [20, "IQ2_XS"],
  [21, "Q2_K_S"],
  [22, "IQ3_XS"],
  [23, "IQ3_XXS"],
  [24, "IQ1_S"],
  [25, "IQ4_NL"],
  [26, "IQ3_S"],
  [27, "IQ3_M"],
  [28, "IQ2_S"],
  [29, "IQ2_M"],
  [30, "IQ4_XS"],
  [31, "IQ1_M"],
  [32, "BF16"],
  [36, "TQ1_0"],
  [37, "TQ2_0"],
  [38, "MXFP4_MOE"],
  [39, "NVFP4"],
  [40, "Q1_0"],
  [41, "Q2_0"],
]);

/** The `general.file_type` value for the plain whole-model types the synthetic writer makes. */
export const LLAMA_FILE_TYPE_OF: Readonly<Record<"F32" | "F16" | "Q4_0" | "Q8_0" | "BF16", number>> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 7,
  BF16: 32,
};

/** llama.cpp's token types (`tokenizer.ggml.token_type`). */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type TokenType = (typeof TokenType)[keyof typeof TokenType];
