import { createWriteStream } from "node:fs";
import type { WriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { once } from "node:events";
import { AgentError } from "../../common/errors.js";
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGUF_ALIGNMENT_KEY,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_WRITE_VERSION,
  GgufValueType,
  alignUp,
  ggmlTypeName,
  ggufValueTypeName,
  tensorByteSize,
} from "./ggufFormat.js";
import type { GgufMetadataEntry, GgufTensorInfo, GgufValue } from "./ggufFormat.js";

/** One tensor to write: its table entry and a producer of its bytes. */
export interface GgufTensorSource {
  name: string;
  /** Shape in ggml order (row length first). */
  dims: readonly number[];
  /** ggml type number (`GgmlType`). */
  type: number;
  /**
   * Yields exactly the tensor's bytes, in order. The writer keeps at most one chunk in
   * flight, so a producer may reuse a chunk's memory once the chunk after it was yielded
   * (two alternating buffers are enough).
   */
  chunks: () => Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
}

export interface GgufWriteProgress {
  bytesWritten: number;
  totalBytes: number;
  tensorIndex: number;
  tensorCount: number;
  tensorName: string;
}

export interface GgufWriteOptions {
  /** Metadata in the order to write it. `general.alignment` (uint32) sets the alignment. */
  metadata: Iterable<readonly [string, GgufMetadataEntry]>;
  tensors: readonly GgufTensorSource[];
  /** GGUF version written in the header (2 and 3 share the layout). Defaults to `3`. */
  version?: number;
  /** Called after each chunk is written. Defaults to none. */
  onProgress?: (progress: GgufWriteProgress) => void;
  /** Sees every byte of the file, in order (e.g. to hash it while writing). Defaults to none. */
  onData?: (chunk: Uint8Array) => void;
}

export interface GgufWriteResult {
  path: string;
  bytes: number;
  dataOffset: number;
  alignment: number;
  tensors: GgufTensorInfo[];
}

export interface GgufLayout {
  header: Buffer;
  alignment: number;
  dataOffset: number;
  tensors: GgufTensorInfo[];
  totalBytes: number;
}

/**
 * Writes a GGUF file without holding its tensor data in memory: header, metadata and
 * tensor table first, then each tensor's chunks with alignment padding. The file appears
 * at `path` only when complete (written beside it, then renamed).
 */
export async function writeGguf(path: string, options: GgufWriteOptions): Promise<GgufWriteResult> {
  const layout = layoutGguf(path, options.metadata, options.tensors, options.version ?? GGUF_WRITE_VERSION);
  const partialPath = `${path}.${process.pid}.partial`;
  const sink = new OneInFlightSink(createWriteStream(partialPath, { highWaterMark: 1 << 22 }), options.onData);
  try {
    await sink.write(layout.header);
    await sink.write(Buffer.alloc(layout.dataOffset - layout.header.length));
    await writeTensorData(path, sink, layout, options);
    await sink.close();
    await rename(partialPath, path);
  } catch (error) {
    await sink.destroy();
    await rm(partialPath, { force: true });
    throw error;
  }
  return { path, bytes: layout.totalBytes, dataOffset: layout.dataOffset, alignment: layout.alignment, tensors: layout.tensors };
}

async function writeTensorData(path: string, sink: OneInFlightSink, layout: GgufLayout, options: GgufWriteOptions): Promise<void> {
  const { tensors } = options;
  for (let index = 0; index < tensors.length; index++) {
    const source = tensors[index];
    const info = layout.tensors[index];
    if (source === undefined || info === undefined) continue;
    const expected = info.byteSize ?? 0;
    const report = (): void =>
      options.onProgress?.({
        bytesWritten: sink.bytesWritten,
        totalBytes: layout.totalBytes,
        tensorIndex: index,
        tensorCount: tensors.length,
        tensorName: source.name,
      });
    let written = 0;
    for await (const chunk of source.chunks()) {
      if (written + chunk.byteLength > expected) {
        throw new AgentError("IA_ERR_INTERNAL", `${path}: tensor '${source.name}' produced more than its ${expected} bytes`);
      }
      await sink.write(chunk);
      written += chunk.byteLength;
      report();
    }
    if (written !== expected) {
      throw new AgentError("IA_ERR_INTERNAL", `${path}: tensor '${source.name}' produced ${written} bytes; expected ${expected}`);
    }
    const padding = alignUp(expected, layout.alignment) - expected;
    if (padding > 0) {
      await sink.write(Buffer.alloc(padding));
      report();
    }
  }
}

/** Encodes the header and computes every tensor's offset, checking names, shapes and types. */
export function layoutGguf(
  path: string,
  metadata: Iterable<readonly [string, GgufMetadataEntry]>,
  sources: readonly Pick<GgufTensorSource, "name" | "dims" | "type">[],
  version: number = GGUF_WRITE_VERSION,
): GgufLayout {
  const entries = [...metadata];
  const alignment = alignmentFrom(path, entries);
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  let offset = 0;
  for (const source of sources) {
    const byteSize = tensorByteSize(source.dims, source.type);
    const problem = tensorProblem(source, byteSize, names);
    if (problem !== undefined) throw new AgentError("IA_ERR_GGUF_TENSOR", `${path}: tensor '${source.name}' ${problem}`);
    names.add(source.name);
    tensors.push({ name: source.name, dims: [...source.dims], type: source.type, offset, byteSize });
    offset += alignUp(byteSize ?? 0, alignment);
  }
  const header = encodeHeader(path, version, entries, tensors);
  const dataOffset = alignUp(header.length, alignment);
  return { header, alignment, dataOffset, tensors, totalBytes: dataOffset + offset };
}

function tensorProblem(
  source: Pick<GgufTensorSource, "name" | "dims" | "type">,
  byteSize: number | undefined,
  names: Set<string>,
): string | undefined {
  const { name, dims, type } = source;
  if (names.has(name)) return "appears twice; expected unique tensor names";
  if (Buffer.byteLength(name) >= GGML_MAX_NAME)
    return `has a name of ${Buffer.byteLength(name)} bytes; expected fewer than ${GGML_MAX_NAME}`;
  if (dims.length === 0 || dims.length > GGML_MAX_DIMS) return `has ${dims.length} dimensions; expected 1 to ${GGML_MAX_DIMS}`;
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) return `has dimensions [${dims.join(", ")}]; expected non-negative integers`;
  if (byteSize === undefined) {
    return `has type ${ggmlTypeName(type)} with a row of ${dims[0]} elements; expected a known ggml type whose block size divides the row`;
  }
  return undefined;
}

function alignmentFrom(path: string, entries: readonly (readonly [string, GgufMetadataEntry])[]): number {
  const entry = entries.find(([key]) => key === GGUF_ALIGNMENT_KEY)?.[1];
  if (entry === undefined) return GGUF_DEFAULT_ALIGNMENT;
  const value = entry.value;
  if (entry.type !== GgufValueType.UINT32 || typeof value !== "number" || value === 0 || (value & (value - 1)) !== 0) {
    throw new AgentError(
      "IA_ERR_GGUF_MALFORMED",
      `${path}: metadata key '${GGUF_ALIGNMENT_KEY}' is ${String(value)}; expected a uint32 power of two`,
    );
  }
  return value;
}

function encodeHeader(
  path: string,
  version: number,
  entries: readonly (readonly [string, GgufMetadataEntry])[],
  tensors: readonly GgufTensorInfo[],
): Buffer {
  const out = new ByteEncoder();
  out.u32(GGUF_MAGIC);
  out.u32(version);
  out.u64(tensors.length);
  out.u64(entries.length);
  const keys = new Set<string>();
  for (const [key, entry] of entries) {
    if (key === "" || keys.has(key)) {
      throw new AgentError("IA_ERR_GGUF_MALFORMED", `${path}: metadata key '${key}' is empty or repeated; expected unique, non-empty keys`);
    }
    keys.add(key);
    out.string(key);
    out.u32(entry.type);
    encodeValue(out, entry.type, entry.value, () => `${path}: metadata key '${key}'`);
  }
  for (const tensor of tensors) {
    out.string(tensor.name);
    out.u32(tensor.dims.length);
    for (const dim of tensor.dims) out.u64(dim);
    out.u32(tensor.type);
    out.u64(tensor.offset);
  }
  return out.result();
}

function encodeValue(out: ByteEncoder, type: GgufValueType, value: GgufValue, where: () => string): void {
  const wrong = (): AgentError =>
    new AgentError("IA_ERR_GGUF_MALFORMED", `${where()}: value ${describe(value)} cannot be written as ${ggufValueTypeName(type)}`);
  if (type === GgufValueType.ARRAY) {
    if (typeof value !== "object") throw wrong();
    out.u32(value.itemType);
    out.u64(value.items.length);
    if (value.itemType === GgufValueType.STRING) {
      for (const item of value.items) {
        if (typeof item !== "string") throw wrong();
        out.string(item);
      }
      return;
    }
    for (const item of value.items) encodeValue(out, value.itemType, item, where);
    return;
  }
  if (type === GgufValueType.STRING) {
    if (typeof value !== "string") throw wrong();
    out.string(value);
    return;
  }
  if (type === GgufValueType.BOOL) {
    if (typeof value !== "boolean") throw wrong();
    out.put(1, (b, o) => b.writeUInt8(value ? 1 : 0, o));
    return;
  }
  if (type === GgufValueType.UINT64 || type === GgufValueType.INT64) {
    if (typeof value !== "number" && typeof value !== "bigint") throw wrong();
    const big = BigInt(value);
    if (type === GgufValueType.UINT64) out.put(8, (b, o) => b.writeBigUInt64LE(big, o));
    else out.put(8, (b, o) => b.writeBigInt64LE(big, o));
    return;
  }
  if (typeof value !== "number") throw wrong();
  try {
    switch (type) {
      case GgufValueType.UINT8:
        out.put(1, (b, o) => b.writeUInt8(value, o));
        break;
      case GgufValueType.INT8:
        out.put(1, (b, o) => b.writeInt8(value, o));
        break;
      case GgufValueType.UINT16:
        out.put(2, (b, o) => b.writeUInt16LE(value, o));
        break;
      case GgufValueType.INT16:
        out.put(2, (b, o) => b.writeInt16LE(value, o));
        break;
      case GgufValueType.UINT32:
        out.put(4, (b, o) => b.writeUInt32LE(value, o));
        break;
      case GgufValueType.INT32:
        out.put(4, (b, o) => b.writeInt32LE(value, o));
        break;
      case GgufValueType.FLOAT32:
        out.put(4, (b, o) => b.writeFloatLE(value, o));
        break;
      case GgufValueType.FLOAT64:
        out.put(8, (b, o) => b.writeDoubleLE(value, o));
        break;
      default:
        throw wrong();
    }
  } catch (error) {
    // Node throws RangeError for a value outside the type's range.
    throw error instanceof AgentError ? error : wrong();
  }
}

function describe(value: GgufValue): string {
  if (typeof value === "object") return `array of ${value.items.length}`;
  return typeof value === "string" ? JSON.stringify(value.slice(0, 40)) : String(value);
}

/** A growable little-endian byte buffer for the header (a 152k vocabulary is a few MB). */
class ByteEncoder {
  private buf = Buffer.allocUnsafe(1 << 16);
  private length = 0;

  private slot(size: number): number {
    this.reserve(size);
    this.length += size;
    return this.length - size;
  }

  /** Writes `size` bytes through `write(buffer, offset)`, growing the buffer first. */
  put(size: number, write: (buf: Buffer, offset: number) => void): void {
    const offset = this.slot(size);
    write(this.buf, offset);
  }

  u32(value: number): void {
    const offset = this.slot(4);
    this.buf.writeUInt32LE(value, offset);
  }

  u64(value: number): void {
    const offset = this.slot(8);
    this.buf.writeUInt32LE(value % 2 ** 32, offset);
    this.buf.writeUInt32LE(Math.floor(value / 2 ** 32), offset + 4);
  }

  string(value: string): void {
    const bytes = Buffer.byteLength(value, "utf8");
    this.u64(bytes);
    this.reserve(bytes);
    this.buf.write(value, this.length, bytes, "utf8");
    this.length += bytes;
  }

  result(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  private reserve(size: number): void {
    if (this.length + size <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + size));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }
}

/** A write stream that holds at most one chunk in flight: each write waits for the previous one. */
class OneInFlightSink {
  bytesWritten = 0;
  private inFlight: Promise<void> = Promise.resolve();
  private failure: Error | undefined;

  constructor(
    private readonly stream: WriteStream,
    private readonly onData: ((chunk: Uint8Array) => void) | undefined,
  ) {
    stream.on("error", (error) => {
      this.failure ??= error;
    });
  }

  async write(chunk: Uint8Array): Promise<void> {
    await this.inFlight;
    if (this.failure !== undefined) throw this.failure;
    if (chunk.byteLength === 0) return;
    this.onData?.(chunk);
    this.bytesWritten += chunk.byteLength;
    this.inFlight = new Promise<void>((resolve, reject) => {
      this.stream.write(chunk, (error) => (error ? reject(error) : resolve()));
    });
    // A rejection is reported by the next write or close, not as an unhandled rejection.
    this.inFlight.catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.inFlight;
    if (this.failure !== undefined) throw this.failure;
    const closed = once(this.stream, "close");
    this.stream.end();
    await closed;
    if (this.failure !== undefined) throw this.failure;
  }

  async destroy(): Promise<void> {
    if (this.stream.closed) return;
    const closed = once(this.stream, "close").catch(() => undefined);
    this.stream.destroy();
    await closed;
  }
}
