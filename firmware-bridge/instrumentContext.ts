import type { Logger } from "../common/logger.js";
import { parseFormat, parseTraceData } from "./trace.js";
import { formatTraceSummary, summarizeTrace } from "./traceSummary.js";

/** What the snapshot reads, in order; all on the default allowlist. */
export const SNAPSHOT_QUERIES = {
  idn: "*IDN?",
  center: ":FREQ:CENT?",
  span: ":FREQ:SPAN?",
  rbw: ":BAND?",
  vbw: ":BAND:VID?",
  sweepTime: ":SWE:TIME?",
  points: ":SWE:POIN?",
  refLevel: ":DISP:WIND:TRAC:Y:RLEV?",
  markerX: ":CALC:MARK1:X?",
  markerY: ":CALC:MARK1:Y?",
  // The trace last: its format is asked, never set (`:FORM` is a command).
  traceForm: ":FORM?",
  traceByteOrder: ":FORM:BORD?",
  trace: ":TRAC:DATA? TRACE1",
} as const;

export type SnapshotField = keyof typeof SNAPSHOT_QUERIES;

const TRACE_FIELDS: ReadonlySet<SnapshotField> = new Set(["traceForm", "traceByteOrder", "trace"]);

export interface InstrumentSnapshot {
  /** Raw replies by field, trimmed but the trace (a latin1 string, one character per byte); a field missing was not read. */
  replies: Partial<Record<SnapshotField, string>>;
  /** Why reading the settings stopped early, if it did; the trace is then not read. */
  error?: string;
  /** Why reading the trace failed, if it did; the settings are kept. */
  traceError?: string;
  /** Why the trace was not read at all (a slow link), if it was not. */
  traceSkipped?: string;
}

export interface InstrumentContextOptions {
  /** Sends one query through the allowlist and the SCPI client. */
  query: (line: string) => Promise<string>;
  /** Where the instrument is, for the "could not be read" line. */
  description: string;
  /** How long a snapshot is reused. Defaults to 3000 ms. */
  cacheMs?: number;
  /** How long "could not be read" is reused, so a dead link does not delay every answer by a timeout. Defaults to 15000 ms. */
  failureCacheMs?: number;
  /** Defaults to no logging. */
  logger?: Logger | undefined;
  /** Clock for the cache. Defaults to `Date.now`. */
  now?: () => number;
  /**
   * Read the trace before every answer. Defaults to true. Off on serial links: a 1001-point
   * ASCII trace is 14 to 20 kB, 15 to 20 s at 9600 baud, which every answer would wait for.
   */
  readTrace?: boolean;
}

/**
 * Reads the analyzer's settings and its trace (TRACE1) before an answer and renders a
 * compact summary for the model: one line of settings, then a few lines of trace summary.
 * Never throws: an instrument that cannot be read gives a line that says so, and the
 * answer goes ahead without live values; a trace that cannot be read keeps the settings.
 */
export class InstrumentContext {
  readonly #options: InstrumentContextOptions;
  readonly #now: () => number;
  #cached: { at: number; text: string; ok: boolean } | undefined;
  #reading: Promise<string> | undefined;
  #lastReadable: boolean | undefined;

  constructor(options: InstrumentContextOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Whether the last read reached the instrument; undefined before the first. */
  get lastReadable(): boolean | undefined {
    return this.#lastReadable;
  }

  /** The summary for the system prompt, from the cache when it is fresh. */
  async render(): Promise<string> {
    const cached = this.#cached;
    const maxAge = cached?.ok ? (this.#options.cacheMs ?? 3000) : (this.#options.failureCacheMs ?? 15_000);
    if (cached && this.#now() - cached.at < maxAge) return cached.text;
    this.#reading ??= this.#read().finally(() => (this.#reading = undefined));
    return this.#reading;
  }

  async #read(): Promise<string> {
    const wasReadable = this.#lastReadable;
    let text: string;
    try {
      const snapshot = await this.snapshot();
      text = renderSnapshot(snapshot, this.#options.description);
      this.#lastReadable = snapshot.replies.idn !== undefined;
    } catch (error) {
      text = unreadableLine(this.#options.description, (error as Error).message);
      this.#lastReadable = false;
    }
    // Said once when the instrument becomes unreadable, not before every answer.
    if (this.#lastReadable === false && wasReadable !== false) this.#options.logger?.warn({ instrument: this.#options.description }, text);
    if (this.#lastReadable === true && wasReadable === false)
      this.#options.logger?.info({ instrument: this.#options.description }, "instrument readable again");
    this.#options.logger?.debug({ instrument: this.#options.description, context: text }, "instrument context");
    this.#cached = { at: this.#now(), text, ok: this.#lastReadable === true };
    return text;
  }

  /** Reads every field; stops at the first failure (a dead link would time out on each). */
  async snapshot(): Promise<InstrumentSnapshot> {
    const replies: InstrumentSnapshot["replies"] = {};
    for (const [field, query] of Object.entries(SNAPSHOT_QUERIES) as [SnapshotField, string][]) {
      if (this.#options.readTrace === false && TRACE_FIELDS.has(field)) {
        return { replies, traceSkipped: "not read before each answer over a serial link (too slow); the read_trace tool reads it" };
      }
      try {
        const reply = await this.#options.query(query);
        // Trimming would cut bytes off a binary block.
        replies[field] = field === "trace" ? reply : reply.trim();
      } catch (error) {
        const message = (error as Error).message;
        return TRACE_FIELDS.has(field) ? { replies, traceError: message } : { replies, error: message };
      }
    }
    return { replies };
  }
}

export function unreadableLine(description: string, reason: string): string {
  return `Instrument (${description}): could not be read (${reason}). Its live settings are unknown: say so when the question depends on them, and do not guess them.`;
}

const SI = [
  [1e9, "G"],
  [1e6, "M"],
  [1e3, "k"],
  [1, ""],
  [1e-3, "m"],
  [1e-6, "µ"],
  [1e-9, "n"],
] as const;

/** 1e9 Hz -> "1 GHz", 0.0025 s -> "2.5 ms". */
export function formatSi(value: number, unit: string): string {
  if (value === 0) return `0 ${unit}`;
  const [scale, prefix] = SI.find(([s]) => Math.abs(value) >= s) ?? SI[SI.length - 1]!;
  return `${Number((value / scale).toPrecision(6))} ${prefix}${unit}`;
}

function numberOf(reply: string | undefined): number | undefined {
  if (reply === undefined) return undefined;
  const value = Number(reply.trim());
  return Number.isFinite(value) ? value : undefined;
}

/** The compact summary the model sees. */
export function renderSnapshot(snapshot: InstrumentSnapshot, description: string): string {
  const r = snapshot.replies;
  if (r.idn === undefined) return unreadableLine(description, snapshot.error ?? "no reply to *IDN?");
  const [maker = "", model = "", serial = "", firmware = ""] = r.idn.split(",").map((s) => s.trim());
  const hz = (field: SnapshotField) => {
    const value = numberOf(r[field]);
    return value === undefined ? undefined : formatSi(value, "Hz");
  };
  const parts: string[] = [];
  const center = numberOf(r.center);
  const span = numberOf(r.span);
  if (center !== undefined) parts.push(`center ${formatSi(center, "Hz")}`);
  if (span !== undefined) {
    const range = center !== undefined ? ` (${formatSi(center - span / 2, "Hz")} to ${formatSi(center + span / 2, "Hz")})` : "";
    parts.push(`span ${formatSi(span, "Hz")}${range}`);
  }
  if (hz("rbw")) parts.push(`RBW ${hz("rbw")}`);
  if (hz("vbw")) parts.push(`VBW ${hz("vbw")}`);
  const sweep = numberOf(r.sweepTime);
  if (sweep !== undefined) parts.push(`sweep time ${formatSi(sweep, "s")}`);
  const points = numberOf(r.points);
  if (points !== undefined) parts.push(`${points} sweep points`);
  const ref = numberOf(r.refLevel);
  if (ref !== undefined) parts.push(`reference level ${ref} dBm`);
  const markerY = numberOf(r.markerY);
  if (hz("markerX") && markerY !== undefined) parts.push(`marker 1 at ${hz("markerX")} reads ${markerY} dBm`);
  const who = [maker, model].filter(Boolean).join(" ") + (serial ? ` (serial ${serial}${firmware ? `, firmware ${firmware}` : ""})` : "");
  const partial = snapshot.error ? ` Other settings could not be read (${snapshot.error}).` : "";
  const settings = `Live instrument settings, just read from ${who} at ${description}: ${parts.join(", ")}.${partial} Use these values when the question concerns the instrument.`;
  return [settings, ...traceLines(snapshot)].join("\n");
}

const MAX_REASON_CHARS = 120;

function traceUnreadable(reason: string): string {
  const short = reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS)}...` : reason;
  return `trace: could not be read (${short})`;
}

/** The trace summary's lines, or one line saying why there is none. */
export function traceLines(snapshot: InstrumentSnapshot): string[] {
  const r = snapshot.replies;
  if (snapshot.error !== undefined) return ["trace: not read (the settings could not be read)"];
  if (snapshot.traceError !== undefined) return [traceUnreadable(snapshot.traceError)];
  if (snapshot.traceSkipped !== undefined) return [`trace: ${snapshot.traceSkipped}`];
  const center = numberOf(r.center);
  const span = numberOf(r.span);
  if (center === undefined || span === undefined) return [traceUnreadable("center or span unknown")];
  try {
    const format = parseFormat(r.traceForm ?? "", r.traceByteOrder ?? "");
    const points = parseTraceData(Buffer.from(r.trace ?? "", "latin1"), format);
    const summary = summarizeTrace(points, {
      startHz: center - span / 2,
      stopHz: center + span / 2,
      referenceLevelDbm: numberOf(r.refLevel),
    });
    const lines = formatTraceSummary(summary);
    const expected = numberOf(r.points);
    if (expected !== undefined && expected !== points.length)
      lines.push(`note: the trace has ${points.length} points, :SWE:POIN? says ${expected}`);
    return lines;
  } catch (error) {
    return [traceUnreadable((error as Error).message)];
  }
}
