import { crc32 } from "node:zlib";
import type { JournalMessage, JournalRoute, JournaledQuestion } from "./journalTypes.js";

/** One line of the journal. `accepted` carries the whole question; the others name it by key. */
export type JournalRecord =
  | ({ type: "accepted" } & JournaledQuestion)
  | { type: "answering"; key: string }
  | { type: "final"; key: string; final: Record<string, unknown> }
  | { type: "expired"; key: string }
  | { type: "session"; session: string; messages: JournalMessage[] };

/** `<crc32 of the JSON, 8 hex digits>\t<JSON>\n`. JSON.stringify escapes newlines, so a record is always one line. */
export function encodeRecord(record: JournalRecord): string {
  const json = JSON.stringify(record);
  return `${crc32(json).toString(16).padStart(8, "0")}\t${json}\n`;
}

export type DecodedLine = { ok: true; record: JournalRecord } | { ok: false; reason: "damaged" | "unknown" };

/**
 * One line without its newline. `damaged`: the checksum or the JSON does not hold (a torn or
 * overwritten write). `unknown`: intact, but not a record this version knows (written by a newer
 * agent, or by hand); skipped, never truncated away.
 */
export function decodeLine(line: Buffer): DecodedLine {
  const tab = line.indexOf(0x09);
  if (tab !== 8) return { ok: false, reason: "damaged" };
  const sum = Number.parseInt(line.subarray(0, 8).toString("latin1"), 16);
  const json = line.subarray(9);
  if (!/^[0-9a-f]{8}$/.test(line.subarray(0, 8).toString("latin1")) || sum !== crc32(json)) return { ok: false, reason: "damaged" };
  let value: unknown;
  try {
    value = JSON.parse(json.toString("utf8"));
  } catch {
    return { ok: false, reason: "damaged" };
  }
  return isRecord(value) ? { ok: true, record: value } : { ok: false, reason: "unknown" };
}

export interface ScannedFile {
  records: JournalRecord[];
  /** Where the good part ends: everything after it is a torn tail to truncate. */
  goodBytes: number;
  /** Damaged or unknown lines followed by a good one: skipped, with where they start. */
  skipped: { offset: number; reason: "damaged" | "unknown" }[];
  /** The torn tail, when there is one: where it starts and how long it is. */
  tornTail?: { offset: number; bytes: number };
}

/**
 * Splits the file into lines and decodes each. Damaged lines at the very end, up to the last
 * byte (a power cut in the middle of a write, a block of zeros, a last line without its
 * newline), are one torn tail; a damaged line that a good one follows is skipped on its own.
 */
export function scanJournal(data: Buffer): ScannedFile {
  const records: JournalRecord[] = [];
  const skipped: ScannedFile["skipped"] = [];
  let pendingBad: ScannedFile["skipped"] = [];
  let goodBytes = 0;
  let offset = 0;
  while (offset < data.length) {
    const newline = data.indexOf(0x0a, offset);
    const end = newline === -1 ? data.length : newline;
    const decoded: DecodedLine = newline === -1 ? { ok: false, reason: "damaged" } : decodeLine(data.subarray(offset, end));
    if (decoded.ok || decoded.reason === "unknown") {
      skipped.push(...pendingBad);
      pendingBad = [];
      if (decoded.ok) records.push(decoded.record);
      else skipped.push({ offset, reason: "unknown" });
      goodBytes = end + 1;
    } else if (end > offset) {
      pendingBad.push({ offset, reason: "damaged" });
    }
    offset = end + 1;
  }
  const scanned: ScannedFile = { records, goodBytes, skipped };
  if (goodBytes < data.length) scanned.tornTail = { offset: goodBytes, bytes: data.length - goodBytes };
  return scanned;
}

const isString = (value: unknown): value is string => typeof value === "string";
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

function isRoute(value: unknown): value is JournalRoute {
  if (!isObject(value) || !isString(value.replyTo) || (value.protocolVersion !== 4 && value.protocolVersion !== 5)) return false;
  return (
    (value.correlationData === undefined || isString(value.correlationData)) &&
    (value.responseTopic === undefined || isString(value.responseTopic))
  );
}

function isRecord(value: unknown): value is JournalRecord {
  if (!isObject(value)) return false;
  switch (value.type) {
    case "accepted":
      return isString(value.key) && isString(value.id) && isRoute(value.route) && "request" in value && Number.isFinite(value.arrivedAt);
    case "answering":
    case "expired":
      return isString(value.key);
    case "final":
      return isString(value.key) && isObject(value.final);
    case "session":
      return (
        isString(value.session) &&
        Array.isArray(value.messages) &&
        value.messages.every((message: unknown) => isObject(message) && isString(message.role) && isString(message.content))
      );
    default:
      return false;
  }
}
