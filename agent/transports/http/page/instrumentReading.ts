import type { InstrumentBridge } from "../../../../firmware-bridge/instrumentBridge.js";
import { renderSnapshot } from "../../../../firmware-bridge/instrumentContext.js";
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

const reading = new WeakMap<InstrumentBridge, Promise<InstrumentData>>();

/**
 * Reads the settings and the trace through the bridge, as the context before an answer does
 * (the same queries, allowlist and audit origin `context`; no trace over a serial link).
 * Pages asking at once share one reading. Never throws.
 */
export function readInstrumentData(bridge: InstrumentBridge): Promise<InstrumentData> {
  let pending = reading.get(bridge);
  if (!pending) {
    pending = bridge.context
      .snapshot()
      .then((snapshot) => instrumentDataOf(snapshot, bridge.description))
      .catch((error: unknown) => ({ settings: null, trace: null, error: (error as Error).message }))
      .finally(() => reading.delete(bridge));
    reading.set(bridge, pending);
  }
  return pending;
}
