import { parseHeader } from "./scpiAllowlist.js";
import { encodeTraceBlock } from "./trace.js";
import type { TraceFormat } from "./trace.js";

/**
 * A simulated swept spectrum analyzer (Keysight X-Series style) for demos and tests. It
 * speaks enough SCPI to be read and, unlike the agent, accepts setters, so a test that
 * sees a setter missing from `received` knows the agent never sent it.
 *
 * Coupling (all "auto" after *RST):
 * - RBW = span / 106 snapped to the nearest 1-3-10 step, clamped to 1 Hz .. 3 MHz
 *   (span 0 keeps the last RBW);
 * - VBW = RBW;
 * - sweep time = max(1 ms, K * span / (RBW * min(RBW, VBW))) with K = 2.5.
 *
 * Its trace (`:TRAC:DATA? TRACE1`..`TRACE6`, all alike) holds TONES over a noise floor of
 * -150 dBm/Hz + 10 log10(RBW), seen through a Gaussian RBW filter (-3 dB at RBW/2) and a
 * positive-peak detector (each point shows the strongest response in its bucket), with a
 * deterministic +-1 dB jitter on the noise. It is sent as `:FORM?` says: ASCII, or a
 * REAL,32 / REAL,64 block in the `:FORM:BORD?` byte order. `receive` returns a block as a
 * latin1 string (one character per byte): write it with `Buffer.from(reply, "latin1")`.
 */

export const SIM_IDN = "Keysight Technologies,N9020A,SIM00001,A.99.99";
export const SWEEP_TIME_K = 2.5;
export const SPAN_RBW_RATIO = 106;
export const MIN_SWEEP_TIME_S = 1e-3;
const MAX_FREQ_HZ = 26.5e9;
const RBW_MIN_HZ = 1;
const RBW_MAX_HZ = 3e6;
/** A CW tone the marker can find: 1 GHz at -20 dBm over a -150 dBm/Hz noise floor, and a weaker one. */
export const TONES: readonly { freq: number; level: number }[] = [
  { freq: 1e9, level: -20 },
  { freq: 1.025e9, level: -60 },
];
export const NOISE_DBM_PER_HZ = -150;

export interface AnalyzerSettings {
  center: number;
  span: number;
  rbw: number;
  rbwAuto: boolean;
  vbw: number;
  vbwAuto: boolean;
  sweepTime: number;
  sweepTimeAuto: boolean;
  points: number;
  refLevel: number;
  markerX: number;
  continuous: boolean;
  format: TraceFormat;
}

const PRESET: AnalyzerSettings = {
  center: 1e9,
  span: 100e6,
  rbw: 1e6,
  rbwAuto: true,
  vbw: 1e6,
  vbwAuto: true,
  sweepTime: 0,
  sweepTimeAuto: true,
  points: 1001,
  refLevel: 0,
  markerX: 1e9,
  continuous: true,
  format: { form: "ASC", byteOrder: "NORM" },
};

/** Nearest value of the 1-3-10 sequence (1, 3, 10, 30, ...) on a log scale. */
export function snapToOneThreeTen(value: number): number {
  if (!(value > 0)) return RBW_MIN_HZ;
  const decade = 10 ** Math.floor(Math.log10(value));
  const steps = [1, 3, 10].map((step) => step * decade);
  let best = steps[0] ?? decade;
  for (const step of steps) if (Math.abs(Math.log(value / step)) < Math.abs(Math.log(value / best))) best = step;
  return best;
}

/** RBW the analyzer picks for a span when RBW is auto. */
export function autoRbw(span: number): number {
  return Math.min(RBW_MAX_HZ, Math.max(RBW_MIN_HZ, snapToOneThreeTen(span / SPAN_RBW_RATIO)));
}

/** Sweep time the analyzer picks when sweep time is auto. */
export function autoSweepTime(span: number, rbw: number, vbw: number): number {
  return Math.max(MIN_SWEEP_TIME_S, (SWEEP_TIME_K * span) / (rbw * Math.min(rbw, vbw)));
}

/** `+1.00000000000E+009`, the way X-Series analyzers reply with real numbers. */
export function formatScpiReal(value: number): string {
  const [mantissa = "0", exponent = "0"] = value.toExponential(11).split("e");
  const exp = Number(exponent);
  const sign = value < 0 ? "" : "+";
  return `${sign}${mantissa}E${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(3, "0")}`;
}

const UNITS: Record<string, number> = { GHZ: 1e9, MHZ: 1e6, KHZ: 1e3, HZ: 1, S: 1, MS: 1e-3, US: 1e-6, NS: 1e-9, DBM: 1 };

function parseNumber(param: string | undefined): number | undefined {
  const match = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:E[+-]?\d+)?)\s*([A-Z]*)$/i.exec((param ?? "").trim());
  if (!match) return undefined;
  const unit = (match[2] ?? "").toUpperCase();
  const factor = unit === "" ? 1 : UNITS[unit];
  return factor === undefined ? undefined : Number(match[1]) * factor;
}

function parseBoolean(param: string | undefined): boolean | undefined {
  const value = (param ?? "").trim().toUpperCase();
  if (value === "ON" || value === "1") return true;
  if (value === "OFF" || value === "0") return false;
  return undefined;
}

class ScpiError extends Error {
  constructor(readonly entry: string) {
    super(entry);
  }
}

const UNDEFINED_HEADER = '-113,"Undefined header"';
const BAD_PARAMETER = '-224,"Illegal parameter value"';

export class SpectrumAnalyzerSimulator {
  /** Every line received, in order, exactly as it arrived (without its terminator). */
  readonly received: string[] = [];
  readonly #errors: string[] = [];
  #settings: AnalyzerSettings = { ...PRESET, format: { ...PRESET.format } };
  readonly #onReceive: ((line: string) => void) | undefined;

  constructor(options: { onReceive?: (line: string) => void } = {}) {
    this.#onReceive = options.onReceive;
    this.#couple();
  }

  /** A copy of the current settings. */
  get settings(): AnalyzerSettings {
    return { ...this.#settings, format: { ...this.#settings.format } };
  }

  /** The error queue, oldest first (not popped). */
  get errors(): readonly string[] {
    return [...this.#errors];
  }

  /** Handles one program message; returns the reply line, or undefined when it asked nothing. */
  receive(line: string): string | undefined {
    this.received.push(line);
    this.#onReceive?.(line);
    const replies: string[] = [];
    let parentPath: string[] = [];
    for (const rawPart of line.split(";")) {
      const part = rawPart.trim();
      if (part === "") continue;
      const [header = "", ...rest] = part.split(/\s+/);
      const parsed = parseHeader(header, undefined, parentPath);
      if (!parsed) {
        this.#pushError(UNDEFINED_HEADER);
        break;
      }
      if (!parsed.isCommon) parentPath = parsed.fullNodes.slice(0, -1);
      const name = parsed.nodes.join(":");
      try {
        if (parsed.isQuery) replies.push(this.#query(name, rest.join(" ")));
        else this.#set(name, rest.join(" "));
      } catch (error) {
        if (!(error instanceof ScpiError)) throw error;
        this.#pushError(error.entry);
        break;
      }
    }
    return replies.length > 0 ? replies.join(";") : undefined;
  }

  #pushError(entry: string): void {
    // X-Series queues hold about 100 entries; the last one says the queue overflowed.
    if (this.#errors.length < 100) this.#errors.push(entry);
  }

  #query(name: string, param: string): string {
    const s = this.#settings;
    if (name === "TRAC:DATA") {
      if (!/^TRACE[1-6]$/i.test(param.trim())) throw new ScpiError(BAD_PARAMETER);
      return this.#traceReply();
    }
    switch (name) {
      case "*IDN":
        return SIM_IDN;
      case "*OPC":
        return "1";
      case "SYST:ERR":
        return this.#errors.shift() ?? '+0,"No error"';
      case "FREQ:CENT":
        return formatScpiReal(s.center);
      case "FREQ:SPAN":
        return formatScpiReal(s.span);
      case "FREQ:STAR":
        return formatScpiReal(s.center - s.span / 2);
      case "FREQ:STOP":
        return formatScpiReal(s.center + s.span / 2);
      case "BAND":
        return formatScpiReal(s.rbw);
      case "BAND:AUTO":
        return s.rbwAuto ? "1" : "0";
      case "BAND:VID":
        return formatScpiReal(s.vbw);
      case "BAND:VID:AUTO":
        return s.vbwAuto ? "1" : "0";
      case "SWE:TIME":
        return formatScpiReal(s.sweepTime);
      case "SWE:TIME:AUTO":
        return s.sweepTimeAuto ? "1" : "0";
      case "SWE:POIN":
        return String(s.points);
      case "DISP:WIND:TRAC:Y:RLEV":
        return formatScpiReal(s.refLevel);
      case "CALC:MARK:X":
        return formatScpiReal(s.markerX);
      case "CALC:MARK:Y":
        return formatScpiReal(this.#markerLevel());
      case "INST:SEL":
        return "SA";
      case "CONF":
        return "SAN";
      case "INIT:CONT":
        return s.continuous ? "1" : "0";
      case "FORM":
        return s.format.form === "ASC" ? "ASC,8" : s.format.form;
      case "FORM:BORD":
        return s.format.byteOrder;
      default:
        throw new ScpiError(UNDEFINED_HEADER);
    }
  }

  #set(name: string, param: string): void {
    const s = this.#settings;
    const number = () => {
      const value = parseNumber(param);
      if (value === undefined || !Number.isFinite(value)) throw new ScpiError(BAD_PARAMETER);
      return value;
    };
    const boolean = () => {
      const value = parseBoolean(param);
      if (value === undefined) throw new ScpiError(BAD_PARAMETER);
      return value;
    };
    switch (name) {
      case "*RST":
      case "SYST:PRES":
        this.#settings = { ...PRESET, format: { ...PRESET.format } };
        break;
      case "*CLS":
        this.#errors.length = 0;
        break;
      case "INIT":
      case "ABOR":
        break;
      case "INIT:CONT":
        s.continuous = boolean();
        break;
      case "INST:SEL":
        if (param.trim().toUpperCase() !== "SA") throw new ScpiError(BAD_PARAMETER);
        break;
      case "FREQ:CENT":
        s.center = clamp(number(), 0, MAX_FREQ_HZ);
        break;
      case "FREQ:SPAN":
        s.span = clamp(number(), 0, MAX_FREQ_HZ);
        break;
      case "FREQ:STAR":
      case "FREQ:STOP": {
        const start = name === "FREQ:STAR" ? number() : s.center - s.span / 2;
        const stop = name === "FREQ:STOP" ? number() : s.center + s.span / 2;
        s.center = clamp((start + stop) / 2, 0, MAX_FREQ_HZ);
        s.span = clamp(Math.abs(stop - start), 0, MAX_FREQ_HZ);
        break;
      }
      case "BAND":
        s.rbw = clamp(number(), RBW_MIN_HZ, 8e6);
        s.rbwAuto = false;
        break;
      case "BAND:AUTO":
        s.rbwAuto = boolean();
        break;
      case "BAND:VID":
        s.vbw = clamp(number(), RBW_MIN_HZ, 50e6);
        s.vbwAuto = false;
        break;
      case "BAND:VID:AUTO":
        s.vbwAuto = boolean();
        break;
      case "SWE:TIME":
        s.sweepTime = clamp(number(), MIN_SWEEP_TIME_S, 4000);
        s.sweepTimeAuto = false;
        break;
      case "SWE:TIME:AUTO":
        s.sweepTimeAuto = boolean();
        break;
      case "SWE:POIN":
        s.points = Math.round(clamp(number(), 1, 100_001));
        break;
      case "DISP:WIND:TRAC:Y:RLEV":
        s.refLevel = clamp(number(), -170, 30);
        break;
      case "CALC:MARK:X":
        s.markerX = clamp(number(), 0, MAX_FREQ_HZ);
        break;
      case "FORM": {
        const form = param.replace(/\s+/g, "").toUpperCase();
        if (/^ASC(II)?(,8)?$/.test(form)) s.format.form = "ASC";
        else if (form === "REAL" || form === "REAL,32") s.format.form = "REAL,32";
        else if (form === "REAL,64") s.format.form = "REAL,64";
        else throw new ScpiError(BAD_PARAMETER);
        break;
      }
      case "FORM:BORD": {
        const order = param.trim().toUpperCase();
        if (order === "NORM" || order === "NORMAL") s.format.byteOrder = "NORM";
        else if (order === "SWAP" || order === "SWAPPED") s.format.byteOrder = "SWAP";
        else throw new ScpiError(BAD_PARAMETER);
        break;
      }
      default:
        throw new ScpiError(UNDEFINED_HEADER);
    }
    this.#couple();
  }

  #couple(): void {
    const s = this.#settings;
    if (s.rbwAuto && s.span > 0) s.rbw = autoRbw(s.span);
    if (s.vbwAuto) s.vbw = s.rbw;
    if (s.sweepTimeAuto) s.sweepTime = autoSweepTime(s.span, s.rbw, s.vbw);
  }

  #markerLevel(): number {
    const s = this.#settings;
    const noise = NOISE_DBM_PER_HZ + 10 * Math.log10(s.rbw);
    const visible = TONES.filter((tone) => Math.abs(s.markerX - tone.freq) <= s.rbw && Math.abs(tone.freq - s.center) <= s.span / 2);
    return Math.round(Math.max(noise, ...visible.map((tone) => tone.level)) * 100) / 100;
  }

  /** The trace in dBm, one value per sweep point from start to stop. */
  trace(): number[] {
    const s = this.#settings;
    const n = s.points;
    const start = s.center - s.span / 2;
    const step = n > 1 ? s.span / (n - 1) : 0;
    const noiseMw = 10 ** ((NOISE_DBM_PER_HZ + 10 * Math.log10(s.rbw)) / 10);
    const points: number[] = [];
    for (let i = 0; i < n; i++) {
      const freq = start + i * step;
      let mw = noiseMw * 10 ** (jitterDb(i) / 10);
      for (const tone of TONES) {
        // The peak detector sees the point of its bucket nearest the tone.
        const offset = Math.max(0, Math.abs(freq - tone.freq) - step / 2);
        const attenuation = 3.0103 * (offset / (s.rbw / 2)) ** 2;
        if (attenuation < 200) mw += 10 ** ((tone.level - attenuation) / 10);
      }
      points.push(10 * Math.log10(mw));
    }
    return points;
  }

  #traceReply(): string {
    const { form, byteOrder } = this.#settings.format;
    const points = this.trace();
    if (form === "ASC") return points.map((value) => formatScpiReal(Math.round(value * 1000) / 1000)).join(",");
    return encodeTraceBlock(points, form, byteOrder).toString("latin1");
  }
}

/** A repeatable +-1 dB per point, so the noise looks like noise and tests stay exact. */
function jitterDb(index: number): number {
  const x = Math.sin(index * 12.9898 + 78.233) * 43758.5453;
  return 2 * (x - Math.floor(x)) - 1;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
