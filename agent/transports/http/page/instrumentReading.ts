import type { InstrumentBridge } from "../../../../firmware-bridge/instrumentBridge.js";
import { InstrumentContext, renderSnapshot } from "../../../../firmware-bridge/instrumentContext.js";
import type { InstrumentSnapshot } from "../../../../firmware-bridge/instrumentContext.js";
import { parseFormat, parseTraceData } from "../../../../firmware-bridge/trace.js";
import { formatDb, summarizeTrace } from "../../../../firmware-bridge/traceSummary.js";

/** The analyzer's settings as the page shows them; a field missing was not read. */
export interface PageSettings {
  /** The instrument context the model sees, settings and trace summary. */
  text: string;
  /** Where the instrument is (`sim`, `tcp://host:port`, ...). */
  instrument: string;
  maker?: string;
  model?: string;
  serial?: string;
  firmware?: string;
  centerHz?: number;
  spanHz?: number;
  rbwHz?: number;
  vbwHz?: number;
  sweepTimeS?: number;
  sweepPoints?: number;
  referenceLevelDbm?: number;
  markerHz?: number;
  markerDbm?: number;
}

export interface PageTrace {
  startHz: number;
  stopHz: number;
  points: number[];
  /** The median point. */
  floorDbm: number;
  /** Strongest first, levels to 0.1 dB as the model's context gives them. */
  peaks: { frequencyHz: number; levelDbm: number }[];
  referenceLevelDbm: number | null;
}

/** The body of `GET /api/instrument` (README, "Web page"). */
export interface InstrumentData {
  settings: PageSettings | null;
  trace: PageTrace | null;
  /** Why the settings or the trace are missing, when they are. */
  error?: string;
}

function numberOf(reply: string | undefined): number | undefined {
  if (reply === undefined) return undefined;
  const value = Number(reply.trim());
  return Number.isFinite(value) ? value : undefined;
}

function settingsOf(snapshot: InstrumentSnapshot, description: string): PageSettings | null {
  const r = snapshot.replies;
  if (r.idn === undefined) return null;
  const [maker, model, serial, firmware] = r.idn.split(",").map((part) => part.trim());
  const fields: Omit<PageSettings, "text" | "instrument"> = {
    maker,
    model,
    serial,
    firmware,
    centerHz: numberOf(r.center),
    spanHz: numberOf(r.span),
    rbwHz: numberOf(r.rbw),
    vbwHz: numberOf(r.vbw),
    sweepTimeS: numberOf(r.sweepTime),
    sweepPoints: numberOf(r.points),
    referenceLevelDbm: numberOf(r.refLevel),
    markerHz: numberOf(r.markerX),
    markerDbm: numberOf(r.markerY),
  };
  const present = Object.entries(fields).filter(([, value]) => value !== undefined && value !== "");
  return { text: renderSnapshot(snapshot, description), instrument: description, ...Object.fromEntries(present) };
}

/** The trace as the plot draws it, read the way the model's context reads it; throws IA_ERR_SCPI_REPLY when it cannot be parsed. */
function traceOf(snapshot: InstrumentSnapshot, settings: PageSettings): PageTrace | null {
  const r = snapshot.replies;
  if (r.trace === undefined || settings.centerHz === undefined || settings.spanHz === undefined) return null;
  const points = parseTraceData(Buffer.from(r.trace, "latin1"), parseFormat(r.traceForm ?? "", r.traceByteOrder ?? ""));
  const startHz = settings.centerHz - settings.spanHz / 2;
  const stopHz = settings.centerHz + settings.spanHz / 2;
  const summary = summarizeTrace(points, { startHz, stopHz, referenceLevelDbm: settings.referenceLevelDbm });
  return {
    startHz,
    stopHz,
    points,
    floorDbm: summary.floorDbm,
    peaks: summary.peaks.map((peak) => ({ frequencyHz: peak.frequencyHz, levelDbm: Number(formatDb(peak.levelDbm, 1)) })),
    referenceLevelDbm: settings.referenceLevelDbm ?? null,
  };
}

/** The page's data from one snapshot. Pure: no I/O. */
export function instrumentDataOf(snapshot: InstrumentSnapshot, description: string): InstrumentData {
  const settings = settingsOf(snapshot, description);
  if (!settings) return { settings: null, trace: null, error: snapshot.error ?? "no reply to *IDN?" };
  const why = snapshot.error ?? snapshot.traceError ?? snapshot.traceSkipped;
  try {
    const trace = traceOf(snapshot, settings);
    return why === undefined ? { settings, trace } : { settings, trace, error: why };
  } catch (error) {
    return { settings, trace: null, error: `the trace cannot be read: ${(error as Error).message}` };
  }
}

/** How long a reading is shared between pages and refreshes. */
const SHARED_MS = 2000;

interface PageReader {
  context: InstrumentContext;
  last?: { at: number; data: Promise<InstrumentData> };
}

const readers = new WeakMap<InstrumentBridge, PageReader>();

/**
 * The page's own snapshot reader: the queries of the context before an answer, through the
 * same allowlist, audited as origin `web` so the audit log tells page refreshes from answers.
 * Like the bridge's context it skips the trace over serial links (seconds at 9600 baud).
 */
function readerFor(bridge: InstrumentBridge): PageReader {
  let reader = readers.get(bridge);
  if (!reader) {
    const context = new InstrumentContext({
      query: (line) => bridge.query(line, "web"),
      description: bridge.description,
      readTrace: bridge.readsTrace,
    });
    reader = { context };
    readers.set(bridge, reader);
  }
  return reader;
}

/**
 * Reads the settings and the trace through the bridge. Pages asking within SHARED_MS (or
 * while a reading is under way) share one reading. Never throws.
 */
export function readInstrumentData(bridge: InstrumentBridge, now = Date.now()): Promise<InstrumentData> {
  const reader = readerFor(bridge);
  if (reader.last && now - reader.last.at < SHARED_MS) return reader.last.data;
  const data = reader.context
    .snapshot()
    .then((snapshot) => instrumentDataOf(snapshot, bridge.description))
    .catch((error: unknown): InstrumentData => ({ settings: null, trace: null, error: (error as Error).message }));
  reader.last = { at: now, data };
  return data;
}
