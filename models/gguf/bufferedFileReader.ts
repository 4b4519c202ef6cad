import type { FileHandle } from "node:fs/promises";
import { AgentError } from "../../common/errors.js";

/** How ggufReader.ts reads a header: little-endian values from one growable buffer, with the file's bounds checked. */

export const CHUNK_BYTES = 1 << 20;
/** No real metadata string comes near this; a longer one is garbage, not a big template. */
export const MAX_STRING_BYTES = 64 << 20;
/**
 * Real headers (metadata and tensor table) take a few MB; a count needing more than this is
 * corrupt. Below it, a count that runs past the end of the file means the file was cut short.
 */
const MAX_HEADER_BYTES = 1 << 30;
export const TWO_32 = 2 ** 32;

/** Sequential reads over a file handle through one growable buffer. */
export class BufferedFileReader {
  buf: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  /** Read index in `buf`. */
  pos = 0;
  /** End of the valid bytes in `buf`. */
  end = 0;
  /** File offset of `buf[0]`. */
  private start = 0;
  /** What is being read, for error messages; set per section, not per value. */
  context = "the header";

  constructor(
    private readonly handle: FileHandle,
    readonly fileBytes: number,
    readonly path: string,
  ) {}

  get offset(): number {
    return this.start + this.pos;
  }

  get available(): number {
    return this.end - this.pos;
  }

  get remainingInFile(): number {
    return this.fileBytes - this.offset;
  }

  /** Makes at least `n` bytes available, or throws IA_ERR_GGUF_TRUNCATED if the file ends first. */
  async need(n: number): Promise<void> {
    if (this.end - this.pos >= n) return;
    if (n > this.remainingInFile) throw this.truncated(n);
    const kept = this.end - this.pos;
    if (n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.buf.copy(grown, 0, this.pos, this.end);
      this.buf = grown;
    } else {
      this.buf.copyWithin(0, this.pos, this.end);
    }
    this.start += this.pos;
    this.pos = 0;
    this.end = kept;
    while (this.end < n) {
      const want = Math.min(this.buf.length - this.end, this.fileBytes - (this.start + this.end));
      const { bytesRead } = await this.handle.read(this.buf, this.end, want, this.start + this.end);
      if (bytesRead === 0) throw this.truncated(n);
      this.end += bytesRead;
    }
  }

  truncated(n: number): AgentError {
    return new AgentError(
      "IA_ERR_GGUF_TRUNCATED",
      `${this.path}: the file ends at byte ${this.fileBytes} inside ${this.context} ` +
        `(${n} bytes needed from offset ${this.offset}); expected a complete GGUF header, metadata and tensor table`,
    );
  }

  malformed(problem: string): AgentError {
    return new AgentError("IA_ERR_GGUF_MALFORMED", `${this.path}: ${this.context} at offset ${this.offset}: ${problem}`);
  }

  u8(): number {
    return this.buf.readUInt8(this.pos++);
  }

  u32(): number {
    const value = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return value;
  }

  /** A uint64 as a number; lengths and offsets beyond 2^53 are reported by the caller. */
  u64(): number {
    const low = this.buf.readUInt32LE(this.pos);
    const high = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
    return high * TWO_32 + low;
  }

  utf8(length: number): string {
    const text = this.buf.toString("utf8", this.pos, this.pos + length);
    this.pos += length;
    return text;
  }

  /** A count or length needing `minBytesEach` bytes per unit: absurd is malformed, past the end is truncated. */
  checkCount(count: number, minBytesEach: number, what: string): void {
    const needed = count * minBytesEach;
    if (!Number.isSafeInteger(count) || needed > MAX_HEADER_BYTES) {
      throw this.malformed(
        `${what} is ${count}, which would need at least ${needed} bytes; expected a GGUF header smaller than ${MAX_HEADER_BYTES} bytes (the file has ${this.fileBytes})`,
      );
    }
    if (needed > this.remainingInFile) throw this.truncated(needed);
  }

  async readString(what: string): Promise<string> {
    await this.need(8);
    const length = this.u64();
    this.checkStringLength(length, what);
    await this.need(length);
    return this.utf8(length);
  }

  checkStringLength(length: number, what: string): void {
    if (length > MAX_STRING_BYTES) {
      throw this.malformed(`${what} has a length of ${length} bytes; expected at most ${MAX_STRING_BYTES}`);
    }
    this.checkCount(length, 1, `the length of ${what}`);
  }
}
