import { AgentError } from "../common/errors.js";

/**
 * A trace in a few numbers the model can use: the noise floor (the median point), the
 * strongest peaks above it, and whether any point comes close to the reference level
 * (possible overload). Pure: no I/O.
 */

/** A peak must stand this far above the floor, and this far above the dip to any stronger peak. */
export const PEAK_MIN_ABOVE_FLOOR_DB = 6;
export const MAX_PEAKS = 5;
/** A point this close to the reference level may mean the input mixer is overloaded. */
export const OVERLOAD_MARGIN_DB = 3;

export interface TraceSettings {
  startHz: number;
  stopHz: number;
  /** Defaults to unknown: no overload check. */
  referenceLevelDbm?: number | undefined;
}

export interface TracePeak {
  index: number;
  frequencyHz: number;
  levelDbm: number;
  aboveFloorDb: number;
}

export interface TraceSummary {
  points: number;
  startHz: number;
  stopHz: number;
  floorDbm: number;
  maxDbm: number;
  /** Strongest first, at most MAX_PEAKS. */
  peaks: TracePeak[];
  referenceLevelDbm?: number | undefined;
  /** Some point is within OVERLOAD_MARGIN_DB of the reference level (false when it is unknown). */
  overload: boolean;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Range minimum in O(1) after O(n log n) preparation. */
function rangeMin(values: readonly number[]): (from: number, to: number) => number {
  const table: number[][] = [[...values]];
  for (let k = 1; 1 << k <= values.length; k++) {
    const previous = table[k - 1]!;
    const half = 1 << (k - 1);
    const row: number[] = [];
    for (let i = 0; i + (1 << k) <= values.length; i++) row.push(Math.min(previous[i]!, previous[i + half]!));
    table.push(row);
  }
  return (from, to) => {
    const [lo, hi] = from <= to ? [from, to] : [to, from];
    const k = Math.floor(Math.log2(hi - lo + 1));
    return Math.min(table[k]![lo]!, table[k]![hi - (1 << k) + 1]!);
  };
}

export function summarizeTrace(points: readonly number[], settings: TraceSettings): TraceSummary {
  const n = points.length;
  if (n === 0) throw new AgentError("IA_ERR_SCPI_REPLY", "the trace has no points");
  const { startHz, stopHz, referenceLevelDbm } = settings;
  const frequencyAt = (index: number) => (n === 1 ? startHz : startHz + (index * (stopHz - startHz)) / (n - 1));
  const floorDbm = median(points);
  const maxDbm = points.reduce((a, b) => Math.max(a, b), -Infinity);
  const threshold = floorDbm + PEAK_MIN_ABOVE_FLOOR_DB;

  // Local maxima (the first point of a flat top) above the threshold, strongest first.
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) {
    const level = points[i]!;
    if (level < threshold) continue;
    const risesFromLeft = i === 0 || level > points[i - 1]!;
    const notBelowRight = i === n - 1 || level >= points[i + 1]!;
    if (risesFromLeft && notBelowRight) candidates.push(i);
  }
  candidates.sort((a, b) => points[b]! - points[a]! || a - b);

  // One tone is one peak: a maximum joins a stronger kept peak unless the trace dips at
  // least PEAK_MIN_ABOVE_FLOOR_DB below it somewhere between the two.
  const min = rangeMin(points);
  const kept: number[] = [];
  for (const index of candidates) {
    if (kept.length >= MAX_PEAKS) break;
    const level = points[index]!;
    if (kept.every((other) => min(index, other) <= level - PEAK_MIN_ABOVE_FLOOR_DB)) kept.push(index);
  }
  const peaks = kept.map((index) => ({
    index,
    frequencyHz: frequencyAt(index),
    levelDbm: points[index]!,
    aboveFloorDb: points[index]! - floorDbm,
  }));
  const overload = referenceLevelDbm !== undefined && maxDbm >= referenceLevelDbm - OVERLOAD_MARGIN_DB;
  return { points: n, startHz, stopHz, floorDbm, maxDbm, peaks, referenceLevelDbm, overload };
}

const UNITS = [
  [1e9, "GHz"],
  [1e6, "MHz"],
  [1e3, "kHz"],
  [1, "Hz"],
] as const;

function unitFor(hz: number): (typeof UNITS)[number] {
  return UNITS.find(([scale]) => Math.abs(hz) >= scale) ?? UNITS[3];
}

/** A frequency in the unit of `unitOf` (defaults to itself); fixed decimals, or the shortest form. */
export function formatHz(hz: number, options: { decimals?: number; unitOf?: number } = {}): string {
  const [scale, unit] = unitFor(options.unitOf ?? hz);
  const value = hz / scale;
  const text = options.decimals === undefined ? String(Number(value.toPrecision(6))) : value.toFixed(options.decimals);
  return `${text} ${unit}`;
}

/** Decimals that show one point step in the unit of `hz`: at least 3, at most 6. */
function decimalsFor(hz: number, stepHz: number): number {
  const [scale] = unitFor(hz);
  if (!(stepHz > 0)) return 3;
  return Math.min(6, Math.max(3, Math.ceil(-Math.log10(stepHz / scale) - 1e-9)));
}

/**
 * dB to `decimals` places, half away from zero after rounding to 0.001 dB: -23.45 gives
 * -23.5 whether it arrived as ASCII (the double -23.44999...) or as REAL,32 (-23.4500008).
 */
export function formatDb(value: number, decimals: 0 | 1): string {
  const step = 10 ** (3 - decimals);
  const thousandths = Math.floor((Math.round(Math.abs(value) * 1000) + step / 2) / step) * step;
  return ((value < 0 && thousandths > 0 ? -thousandths : thousandths) / 1000).toFixed(decimals);
}

/** A few short lines for the model and the logs: levels to 0.1 dB, the floor and heights above it to 1 dB. */
export function formatTraceSummary(summary: TraceSummary): string[] {
  const { points, startHz, stopHz } = summary;
  const unitOf = Math.max(Math.abs(startHz), Math.abs(stopHz));
  const range =
    startHz === stopHz ? `zero span at ${formatHz(startHz)}` : `${formatHz(startHz, { unitOf })} to ${formatHz(stopHz, { unitOf })}`;
  const lines = [`trace: ${points} points, ${range}; floor ${formatDb(summary.floorDbm, 0)} dBm (median)`];
  const step = points > 1 ? Math.abs(stopHz - startHz) / (points - 1) : 0;
  for (const peak of summary.peaks) {
    const frequency = formatHz(peak.frequencyHz, { decimals: decimalsFor(peak.frequencyHz, step) });
    lines.push(`peak ${frequency} ${formatDb(peak.levelDbm, 1)} dBm (${formatDb(peak.aboveFloorDb, 0)} dB above floor)`);
  }
  if (summary.peaks.length === 0) lines.push(`no peak ${PEAK_MIN_ABOVE_FLOOR_DB} dB above the floor`);
  if (summary.overload && summary.referenceLevelDbm !== undefined) {
    lines.push(
      `possible overload: the highest point, ${formatDb(summary.maxDbm, 1)} dBm, is within ${OVERLOAD_MARGIN_DB} dB of the reference level ${formatDb(summary.referenceLevelDbm, 1)} dBm`,
    );
  }
  return lines;
}
