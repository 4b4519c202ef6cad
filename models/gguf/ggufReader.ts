import { open, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { AgentError } from "../../common/errors.js";
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGUF_ALIGNMENT_KEY,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAGIC_TEXT,
  GGUF_SUPPORTED_VERSIONS,
  GgufValueType,
  alignUp,
  ggufFixedValueSize,
  ggufValueTypeName,
  isGgufValueType,
  tensorByteSize,
} from "./ggufFormat.js";
import type { GgufArray, GgufFile, GgufMetadata, GgufTensorInfo, GgufValue } from "./ggufFormat.js";
import { BufferedFileReader, CHUNK_BYTES, MAX_STRING_BYTES, TWO_32 } from "./bufferedFileReader.js";

/** Smallest encodings: a key-value pair (empty key, type, one byte) and a tensor info. */
const MIN_KV_BYTES = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8;

/**
 * Reads a GGUF file's header, metadata and tensor table (not the tensor data) through a
 * buffered reader, so a 152k-token vocabulary costs a few megabytes, not the whole file.
 * Refuses, with an AgentError, a missing path, a directory, an empty file, wrong magic,
 * a version other than 2 or 3, and any count or length the file cannot hold.
 */
export async function readGguf(path: string): Promise<GgufFile> {
  const fileBytes = await regularFileSize(path);
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw openError(path, error);
  }
  try {
    return await new GgufHeaderParser(new BufferedFileReader(handle, fileBytes, path)).parse();
  } finally {
    await handle.close();
  }
}

async function regularFileSize(path: string): Promise<number> {
  let stats;
  try {
    stats = await stat(path);
  } catch (error) {
    throw openError(path, error);
  }
  if (!stats.isFile()) {
    const kind = stats.isDirectory() ? "a directory" : "not a regular file";
    throw new AgentError("IA_ERR_MODEL_NOT_FILE", `${path}: the model path is ${kind}; expected a .gguf file`);
  }
  if (stats.size === 0) {
    throw new AgentError("IA_ERR_GGUF_EMPTY", `${path}: the model file is empty (0 bytes); expected a GGUF file starting with "GGUF"`);
  }
  return stats.size;
}

function openError(path: string, error: unknown): AgentError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new AgentError("IA_ERR_MODEL_NOT_FOUND", `${path}: no such model file; expected the path of an existing .gguf file`, {
      cause: error,
    });
  }
  if (code === "EISDIR") {
    return new AgentError("IA_ERR_MODEL_NOT_FILE", `${path}: the model path is a directory; expected a .gguf file`, { cause: error });
  }
  return new AgentError(
    "IA_ERR_MODEL_NOT_FILE",
    `${path}: the model file cannot be opened for reading (${code ?? String(error)}); expected a readable .gguf file`,
    { cause: error },
  );
}

class GgufHeaderParser {
  constructor(private readonly r: BufferedFileReader) {}

  async parse(): Promise<GgufFile> {
    const r = this.r;
    await this.readMagic();
    r.context = "the header";
    await r.need(4);
    const version = r.u32();
    checkVersion(r.path, version);
    await r.need(16);
    const tensorCount = r.u64();
    const kvCount = r.u64();
    r.checkCount(kvCount, MIN_KV_BYTES, "the metadata count");
    r.checkCount(tensorCount, MIN_TENSOR_INFO_BYTES, "the tensor count");

    const metadata: GgufMetadata = new Map();
    for (let i = 0; i < kvCount; i++) {
      r.context = `metadata entry #${i}`;
      const key = await r.readString("the key");
      if (metadata.has(key)) throw r.malformed(`duplicate metadata key '${key}'; expected each key once`);
      r.context = `metadata key '${key}'`;
      await r.need(4);
      const type = r.u32();
      if (!isGgufValueType(type)) throw r.malformed(`value type ${type}; expected 0-12 (uint8 ... float64)`);
      metadata.set(key, { type, value: await this.readValue(type, `metadata key '${key}'`) });
    }

    const alignment = alignmentOf(r, metadata);
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < tensorCount; i++) {
      r.context = `tensor info #${i}`;
      tensors.push(await this.readTensorInfo());
    }
    r.context = "the tensor table";
    return { path: r.path, version, metadata, tensors, alignment, dataOffset: alignUp(r.offset, alignment), fileBytes: r.fileBytes };
  }

  private async readMagic(): Promise<void> {
    const r = this.r;
    r.context = "the magic bytes";
    const have = Math.min(4, r.fileBytes);
    await r.need(have);
    const first = r.buf.subarray(0, have);
    if (have === 4 && first.readUInt32LE(0) === GGUF_MAGIC) {
      r.pos = 4;
      return;
    }
    if (have < 4 && Buffer.from(GGUF_MAGIC_TEXT, "latin1").subarray(0, have).equals(first)) throw r.truncated(4);
    throw new AgentError(
      "IA_ERR_GGUF_MAGIC",
      `${r.path}: the file starts with ${describeBytes(first)}; expected the GGUF magic "${GGUF_MAGIC_TEXT}" (47 47 55 46): not a GGUF model`,
    );
  }

  private async readValue(type: GgufValueType, what: string): Promise<GgufValue> {
    const r = this.r;
    if (type === GgufValueType.STRING) return r.readString(what);
    if (type === GgufValueType.ARRAY) return this.readArray(what);
    const size = ggufFixedValueSize(type) ?? 0;
    await r.need(size);
    const value = readFixed(r.buf, r.pos, type);
    r.pos += size;
    return value;
  }

  private async readArray(what: string): Promise<GgufArray> {
    const r = this.r;
    await r.need(12);
    const itemType = r.u32();
    if (!isGgufValueType(itemType)) throw r.malformed(`array item type ${itemType}; expected 0-12 (uint8 ... float64)`);
    const count = r.u64();
    const fixed = ggufFixedValueSize(itemType);
    r.checkCount(count, fixed ?? (itemType === GgufValueType.STRING ? 8 : 12), `the item count of ${what}`);
    if (fixed !== undefined) return { itemType, items: await this.readFixedItems(itemType, fixed, count) };
    if (itemType === GgufValueType.STRING) return { itemType, items: await this.readStringItems(count, what) };
    const items: GgufValue[] = [];
    for (let i = 0; i < count; i++) items.push(await this.readArray(`${what} item ${i}`));
    return { itemType, items };
  }

  private async readFixedItems(type: GgufValueType, size: number, count: number): Promise<GgufValue[]> {
    const r = this.r;
    const items: GgufValue[] = new Array<GgufValue>(count);
    let i = 0;
    while (i < count) {
      await r.need(Math.min((count - i) * size, CHUNK_BYTES));
      const batchEnd = Math.min(count, i + Math.floor(r.available / size));
      for (; i < batchEnd; i++) {
        items[i] = readFixed(r.buf, r.pos, type);
        r.pos += size;
      }
    }
    return items;
  }

  /** Strings one by one, awaiting only when the buffer runs dry (a vocabulary has 150k of them). */
  private async readStringItems(count: number, what: string): Promise<GgufValue[]> {
    const r = this.r;
    const items: GgufValue[] = new Array<GgufValue>(count);
    for (let i = 0; i < count; i++) {
      if (r.available >= 8) {
        const length = r.buf.readUInt32LE(r.pos) + r.buf.readUInt32LE(r.pos + 4) * TWO_32;
        if (length <= MAX_STRING_BYTES && r.available >= 8 + length) {
          r.pos += 8;
          items[i] = r.utf8(length);
          continue;
        }
      }
      items[i] = await r.readString(`${what} item ${i}`);
    }
    return items;
  }

  private async readTensorInfo(): Promise<GgufTensorInfo> {
    const r = this.r;
    const name = await r.readString("the tensor name");
    r.context = `tensor '${name}'`;
    if (Buffer.byteLength(name) >= GGML_MAX_NAME) {
      throw r.malformed(`the name is ${Buffer.byteLength(name)} bytes long; expected fewer than ${GGML_MAX_NAME}`);
    }
    await r.need(4);
    const dimCount = r.u32();
    if (dimCount > GGML_MAX_DIMS) throw r.malformed(`${dimCount} dimensions; expected at most ${GGML_MAX_DIMS}`);
    await r.need(dimCount * 8 + 4 + 8);
    const dims: number[] = [];
    let elements = 1;
    for (let d = 0; d < dimCount; d++) {
      const dim = r.u64();
      elements *= dim;
      if (dim >= 2 ** 63 || !Number.isSafeInteger(elements)) {
        throw r.malformed(`dimension ${d} is ${dim}; expected a size whose element count stays below 2^53`);
      }
      dims.push(dim);
    }
    const type = r.u32();
    const offset = r.u64();
    if (!Number.isSafeInteger(offset)) throw r.malformed(`data offset ${offset}; expected an offset below 2^53`);
    return { name, dims, type, offset, byteSize: tensorByteSize(dims, type) };
  }
}

function checkVersion(path: string, version: number): void {
  if (GGUF_SUPPORTED_VERSIONS.includes(version)) return;
  const expected = `expected version ${GGUF_SUPPORTED_VERSIONS.join(" or ")}`;
  let why = "";
  if (version === 1) why = " (GGUF v1 is no longer read by llama.cpp; convert the model again)";
  else if (version !== 0 && (version & 0xffff) === 0) why = " (a big-endian GGUF file? llama.cpp here reads little-endian files)";
  throw new AgentError("IA_ERR_GGUF_VERSION", `${path}: GGUF version ${version}${why}; ${expected}`);
}

function alignmentOf(r: BufferedFileReader, metadata: GgufMetadata): number {
  const entry = metadata.get(GGUF_ALIGNMENT_KEY);
  if (entry === undefined) return GGUF_DEFAULT_ALIGNMENT;
  r.context = `metadata key '${GGUF_ALIGNMENT_KEY}'`;
  const value = entry.value;
  if (entry.type !== GgufValueType.UINT32 || typeof value !== "number") {
    throw r.malformed(`type ${ggufValueTypeName(entry.type)}; expected uint32`);
  }
  if (value === 0 || (value & (value - 1)) !== 0) throw r.malformed(`value ${value}; expected a power of two`);
  return value;
}

function readFixed(buf: Buffer, pos: number, type: GgufValueType): GgufValue {
  switch (type) {
    case GgufValueType.UINT8:
      return buf.readUInt8(pos);
    case GgufValueType.INT8:
      return buf.readInt8(pos);
    case GgufValueType.UINT16:
      return buf.readUInt16LE(pos);
    case GgufValueType.INT16:
      return buf.readInt16LE(pos);
    case GgufValueType.UINT32:
      return buf.readUInt32LE(pos);
    case GgufValueType.INT32:
      return buf.readInt32LE(pos);
    case GgufValueType.FLOAT32:
      return buf.readFloatLE(pos);
    case GgufValueType.BOOL:
      return buf.readUInt8(pos) !== 0;
    case GgufValueType.UINT64:
      return buf.readBigUInt64LE(pos);
    case GgufValueType.INT64:
      return buf.readBigInt64LE(pos);
    case GgufValueType.FLOAT64:
      return buf.readDoubleLE(pos);
    default:
      throw new Error(`readFixed: ${ggufValueTypeName(type)} is not a fixed-size type`);
  }
}

function describeBytes(bytes: Buffer): string {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  const text = [...bytes].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
  return `${hex} ("${text}")`;
}
