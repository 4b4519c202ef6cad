import { AgentError } from "../common/errors.js";

/**
 * Trace replies of `:TRAC:DATA? TRACEn`: ASCII (comma-separated numbers) or an IEEE 488.2
 * definite-length binary block `#<n><len><data>` of REAL,32 or REAL,64 values, in the byte
 * order `:FORM:BORD?` reports (NORM = big-endian, SWAP = little-endian). Pure: no I/O.
 */

export type TraceForm = "ASC" | "REAL,32" | "REAL,64";
export type TraceByteOrder = "NORM" | "SWAP";

export interface TraceFormat {
  form: TraceForm;
  byteOrder: TraceByteOrder;
}

function badReply(message: string): AgentError {
  return new AgentError("IA_ERR_SCPI_REPLY", message);
}

function clip(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text);
}

/** The format from the replies of `:FORM?` ("ASC,8", "REAL,32", "REAL,64") and `:FORM:BORD?` ("NORM", "SWAP"). */
export function parseFormat(formReply: string, bordReply: string): TraceFormat {
  const form = formReply.trim().replace(/^"|"$/g, "").replace(/\s+/g, "").toUpperCase();
  const bord = bordReply.trim().replace(/^"|"$/g, "").toUpperCase();
  let parsedForm: TraceForm;
  if (/^ASC(II)?(,\d+)?$/.test(form)) parsedForm = "ASC";
  else if (form === "REAL,32" || form === "REAL") parsedForm = "REAL,32";
  else if (form === "REAL,64") parsedForm = "REAL,64";
  else throw badReply(`:FORM? replied ${clip(formReply)}; expected ASC, REAL,32 or REAL,64`);
  let byteOrder: TraceByteOrder;
  if (/^NORM(AL)?$/.test(bord)) byteOrder = "NORM";
  else if (/^SWAP(PED)?$/.test(bord)) byteOrder = "SWAP";
  else throw badReply(`:FORM:BORD? replied ${clip(bordReply)}; expected NORM or SWAP`);
  return { form: parsedForm, byteOrder };
}

/** The trace points of one reply, in dBm (or whatever unit the instrument's Y axis uses). */
export function parseTraceData(data: Buffer, format: TraceFormat): number[] {
  return format.form === "ASC" ? parseAscii(data) : parseBlock(data, format.form === "REAL,32" ? 4 : 8, format.byteOrder);
}

function parseAscii(data: Buffer): number[] {
  const text = data.toString("latin1").trim();
  if (text === "") throw badReply("the trace reply is empty");
  if (text.startsWith("#")) throw badReply("the trace reply is a binary block but :FORM? said ASC");
  return text.split(",").map((field, index) => {
    const trimmed = field.trim();
    const value = trimmed === "" ? Number.NaN : Number(trimmed);
    if (!Number.isFinite(value)) throw badReply(`trace point ${index} is ${clip(trimmed)}, not a number`);
    return value;
  });
}

/** The IEEE 488.2 definite-length block; a trailing LF or CR LF after it is the terminator. */
function parseBlock(data: Buffer, width: 4 | 8, byteOrder: TraceByteOrder): number[] {
  const form = width === 4 ? "REAL,32" : "REAL,64";
  if (data.length === 0) throw badReply("the trace reply is empty");
  if (data[0] !== 0x23)
    throw badReply(
      `the ${form} trace reply does not start with '#' (a definite-length block): ${clip(data.subarray(0, 20).toString("latin1"))}`,
    );
  const digitsChar = data.length > 1 ? String.fromCharCode(data[1]!) : "";
  if (digitsChar === "0") throw badReply("the trace reply is an indefinite-length block (#0); only definite-length blocks are read");
  if (!/^[1-9]$/.test(digitsChar)) throw badReply(`the block header's digit count is ${clip(digitsChar)}, expected 1 to 9`);
  const digits = Number(digitsChar);
  const lengthText = data.subarray(2, 2 + digits).toString("latin1");
  if (lengthText.length < digits || !/^\d+$/.test(lengthText))
    throw badReply(`the block header's length ${clip(lengthText)} is not ${digits} decimal digits`);
  const length = Number(lengthText);
  const start = 2 + digits;
  const available = data.length - start;
  if (available < length) throw badReply(`the block says ${length} bytes but only ${available} arrived (truncated)`);
  const rest = data.subarray(start + length).toString("latin1");
  if (rest !== "" && rest !== "\n" && rest !== "\r\n")
    throw badReply(`the block says ${length} bytes but ${available} arrived (${available - length} bytes after the block)`);
  if (length % width !== 0) throw badReply(`the block's ${length} bytes are not a whole number of ${form} values (${width} bytes each)`);
  const view = new DataView(data.buffer, data.byteOffset + start, length);
  const little = byteOrder === "SWAP";
  const points: number[] = [];
  for (let offset = 0; offset < length; offset += width) {
    const value = width === 4 ? view.getFloat32(offset, little) : view.getFloat64(offset, little);
    if (!Number.isFinite(value)) throw badReply(`trace point ${offset / width} is ${value}, not a finite number`);
    points.push(value);
  }
  return points;
}

/** Encodes points as a definite-length block, the way an instrument sends them (simulator and tests). */
export function encodeTraceBlock(points: readonly number[], form: "REAL,32" | "REAL,64", byteOrder: TraceByteOrder): Buffer {
  const width = form === "REAL,32" ? 4 : 8;
  const body = Buffer.alloc(points.length * width);
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const little = byteOrder === "SWAP";
  points.forEach((value, index) => {
    if (width === 4) view.setFloat32(index * width, value, little);
    else view.setFloat64(index * width, value, little);
  });
  const length = String(body.length);
  return Buffer.concat([Buffer.from(`#${length.length}${length}`, "latin1"), body]);
}
