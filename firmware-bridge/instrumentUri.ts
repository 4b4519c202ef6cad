import { AgentError } from "../common/errors.js";

/**
 * `--instrument` values: `tcp://host[:port]` (port defaults to 5025),
 * `serial:///dev/ttyUSB0?baud=9600` (baud defaults to 9600), `prologix:///dev/ttyUSB0?addr=18`
 * (addr 0..30, defaults to none: required; baud defaults to 115200), `sim`, or `off`.
 * On Windows a port is written `serial://COM5` or `serial:///COM5`.
 */
export type InstrumentAddress =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "serial"; path: string; baudRate: number }
  | { kind: "prologix"; path: string; baudRate: number; gpibAddress: number }
  | { kind: "sim" };

export const SCPI_TCP_PORT = 5025;
const EXAMPLES = "tcp://host:5025, serial:///dev/ttyUSB0?baud=9600, prologix:///dev/ttyUSB0?addr=18, sim or off";
const BAUD_RATES = [300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

function bad(uri: string, why: string): AgentError {
  return new AgentError("IA_ERR_INSTRUMENT_URI", `--instrument ${JSON.stringify(uri)}: ${why} (expected ${EXAMPLES})`);
}

function wholeNumber(uri: string, name: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw bad(uri, `${name} must be a whole number, got ${JSON.stringify(text)}`);
  const value = Number(text);
  if (value < min || value > max) throw bad(uri, `${name} must be from ${min} to ${max}, got ${value}`);
  return value;
}

function serialParts(uri: string, rest: string, allowed: string[]): { path: string; params: Map<string, string> } {
  const [pathPart = "", query = ""] = rest.split("?", 2);
  // serial:///dev/ttyUSB0 and serial:///COM5 carry an absolute path; serial://COM5 a bare name.
  const path = /^\/COM\d+$/i.test(pathPart) ? pathPart.slice(1) : pathPart;
  if (path === "" || path === "/") throw bad(uri, "the serial device path is missing");
  if (!path.startsWith("/") && !/^COM\d+$/i.test(path))
    throw bad(uri, `the device path ${JSON.stringify(path)} is not absolute: write three slashes, as in serial:///dev/ttyUSB0`);
  const params = new Map<string, string>();
  for (const pair of query === "" ? [] : query.split("&")) {
    const [key = "", value = ""] = pair.split("=", 2);
    if (!allowed.includes(key)) throw bad(uri, `unknown parameter ${JSON.stringify(key)} (known: ${allowed.join(", ")})`);
    params.set(key, decodeURIComponent(value));
  }
  return { path: decodeURIComponent(path), params };
}

function baudOf(uri: string, params: Map<string, string>, fallback: number): number {
  const text = params.get("baud");
  if (text === undefined) return fallback;
  const baud = wholeNumber(uri, "baud", text, 300, 921_600);
  if (!BAUD_RATES.includes(baud)) throw bad(uri, `baud ${baud} is not a standard rate (${BAUD_RATES.join(", ")})`);
  return baud;
}

/** Parses an instrument URI; `off` gives undefined. Throws IA_ERR_INSTRUMENT_URI naming what is wrong. */
export function parseInstrumentUri(uri: string): InstrumentAddress | undefined {
  const text = uri.trim();
  if (text === "off") return undefined;
  if (text === "sim") return { kind: "sim" };
  const scheme = /^([a-z]+):\/\/(.*)$/i.exec(text);
  if (!scheme) throw bad(uri, "not a URI");
  const kind = (scheme[1] ?? "").toLowerCase();
  const rest = scheme[2] ?? "";
  if (kind === "tcp") {
    const match = /^(\[[^\]]+\]|[^:/?#]+)(?::(\d*))?\/?$/.exec(rest);
    if (!match) throw bad(uri, "expected tcp://host or tcp://host:port");
    const host = (match[1] ?? "").replace(/^\[|\]$/g, "");
    const port = match[2] === undefined ? SCPI_TCP_PORT : wholeNumber(uri, "port", match[2], 1, 65_535);
    return { kind: "tcp", host, port };
  }
  if (kind === "serial") {
    const { path, params } = serialParts(uri, rest, ["baud"]);
    return { kind: "serial", path, baudRate: baudOf(uri, params, 9600) };
  }
  if (kind === "prologix") {
    const { path, params } = serialParts(uri, rest, ["addr", "baud"]);
    const addr = params.get("addr");
    if (addr === undefined) throw bad(uri, "the GPIB address is missing: add ?addr=<0..30>");
    return { kind: "prologix", path, baudRate: baudOf(uri, params, 115_200), gpibAddress: wholeNumber(uri, "addr", addr, 0, 30) };
  }
  throw bad(uri, `unknown scheme ${JSON.stringify(kind)}`);
}

/** The address as people read it. */
export function describeAddress(address: InstrumentAddress): string {
  switch (address.kind) {
    case "tcp":
      return `tcp://${address.host.includes(":") ? `[${address.host}]` : address.host}:${address.port}`;
    case "serial":
      return `serial://${address.path}?baud=${address.baudRate}`;
    case "prologix":
      return `prologix://${address.path}?addr=${address.gpibAddress}`;
    case "sim":
      return "sim";
  }
}
