/**
 * The read-only gate every SCPI line passes before it may reach the instrument: the
 * `scpi` command, `/scpi` on the consoles, the MQTT scpi topic, the instrument context and
 * the model. Pure: no I/O, no clock.
 *
 * A line is accepted only when every `;`-joined part is a query on the allowlist. Headers
 * are compared in a canonical form: short mnemonics, upper case, no leading colon, the
 * optional `SENSe` root and other optional nodes dropped, numeric suffix 1 dropped
 * (`:SENSe:FREQuency:CENTer?` and `freq:cent?` are both `FREQ:CENT?`).
 */

/** Long forms with the short form in upper case, as instrument manuals write them. */
const KNOWN_MNEMONICS = [
  "SENSe",
  "FREQuency",
  "CENTer",
  "SPAN",
  "STARt",
  "STOP",
  "BANDwidth",
  "BWIDth",
  "RESolution",
  "VIDeo",
  "SWEep",
  "TIME",
  "POINts",
  "DISPlay",
  "WINDow",
  "TRACe",
  "Y",
  "X",
  "SCALe",
  "RLEVel",
  "CALCulate",
  "MARKer",
  "INSTrument",
  "SELect",
  "NSELect",
  "CONFigure",
  "SYSTem",
  "ERRor",
  "NEXT",
  "PRESet",
  "INITiate",
  "CONTinuous",
  "IMMediate",
  "RESTart",
  "AUTO",
  "ABORt",
  "STATus",
  "OPERation",
  "QUEStionable",
  "MODE",
  "AVERage",
  "COUNt",
  "DETector",
  "FUNCtion",
  "POWer",
  "ATTenuation",
  "MEASure",
  "READ",
  "FETCh",
  "DATA",
  "FORMat",
  "BORDer",
  "TRIGger",
  "SOURce",
  "UNIT",
  "MMEMory",
  "STORe",
  "LOAD",
  "CALibration",
  "PEAK",
  "MAXimum",
] as const;

/** Header aliases that mean the same node (`BWIDth` is `BANDwidth`). */
const ALIASES: Record<string, string> = { BWID: "BAND" };

/** The default allowlist (README, "Firmware bridge"): reads of a swept spectrum analyzer. */
export const DEFAULT_SCPI_ALLOWLIST: readonly string[] = [
  "*IDN?",
  ":FREQ:CENT?",
  ":FREQ:SPAN?",
  ":FREQ:STAR?",
  ":FREQ:STOP?",
  ":BAND?",
  ":BAND:VID?",
  ":SWE:TIME?",
  ":SWE:POIN?",
  ":DISP:WIND:TRAC:Y:RLEV?",
  ":CALC:MARK1:X?",
  ":CALC:MARK1:Y?",
  ":INST:SEL?",
  ":CONF?",
  ":FORM?",
  ":FORM:BORD?",
  // Reads (and so empties) the error queue, as the SCPI client itself does after a failed
  // query; it changes no measurement setting. The model's read_errors tool uses it.
  ":SYST:ERR?",
];

/**
 * The only queries with a parameter, and the parameters they take: the trace read
 * (README, "Firmware bridge"). Such a query must be alone on its line, so its reply (a
 * binary block, perhaps) is the line's only reply.
 */
const PARAMETER_QUERIES: ReadonlyMap<string, { pattern: RegExp; expected: string }> = new Map([
  ["TRAC:DATA?", { pattern: /^TRACE[1-6]$/i, expected: "exactly one trace name, TRACE1 to TRACE6" }],
]);

/** Why a command that would change state is refused, by canonical header. */
const STATE_CHANGERS: [RegExp, string][] = [
  [/^\*RST$/, "it resets the instrument to its defaults"],
  [/^\*CLS$/, "it clears the instrument's status and error queue"],
  [/^SYST:PRES/, "it presets the instrument"],
  [/^INIT/, "it starts, stops or restarts the measurement sweep"],
  [/^ABOR/, "it aborts the measurement in progress"],
  [/^\*(TRG|WAI|SAV|RCL|PSC|ESE|SRE|OPC)$/, "it triggers, saves, recalls or changes status settings"],
];

/** Longest line accepted; SCPI queries are short, anything longer is not one. */
export const MAX_SCPI_LINE = 256;

export interface ScpiQuery {
  /** The part as written. */
  text: string;
  /** The canonical header, e.g. `FREQ:CENT?`. */
  canonical: string;
  /** What is sent to the instrument: the canonical header with a leading colon (`*IDN?` as is). */
  wire: string;
}

export interface ScpiRefusal {
  /** The part refused, as written (or the whole line). */
  part: string;
  reason: string;
}

export type ScpiCheck = { ok: true; queries: ScpiQuery[] } | { ok: false; refusals: ScpiRefusal[]; message: string };

export interface ParsedHeader {
  /** Canonical nodes after optional nodes are dropped, e.g. `["FREQ", "CENT"]` or `["*IDN"]`. */
  nodes: string[];
  /** Canonical nodes before dropping optional nodes: the path a relative header after `;` continues. */
  fullNodes: string[];
  isQuery: boolean;
  isCommon: boolean;
  /** Whether the header started with `:` (absolute). */
  absolute: boolean;
}

type MnemonicTable = Map<string, string>;

function mnemonicTable(extra: Iterable<string>): MnemonicTable {
  const table: MnemonicTable = new Map();
  const learn = (word: string) => {
    const short = /^[A-Z]+/.exec(word)?.[0] ?? word.toUpperCase();
    table.set(word.toUpperCase(), short);
    table.set(short, short);
  };
  for (const word of KNOWN_MNEMONICS) learn(word);
  for (const word of extra) learn(word);
  return table;
}

/** Mixed-case nodes in configured entries (`DETector`) teach their short form. */
function mnemonicsIn(entries: readonly string[]): string[] {
  const words: string[] = [];
  for (const entry of entries) {
    for (const node of entry.split(/[:?\s]/)) {
      const letters = /^[A-Za-z]+/.exec(node)?.[0] ?? "";
      if (/^[A-Z]+[a-z]+$/.test(letters)) words.push(letters);
    }
  }
  return words;
}

const DEFAULT_TABLE = mnemonicTable([]);

const HEADER = /^(:?)(\*[A-Za-z]+|[A-Za-z][A-Za-z0-9]*(?::[A-Za-z][A-Za-z0-9]*)*)(\?)?$/;

function canonicalNode(node: string, table: MnemonicTable): string {
  const match = /^([A-Za-z]+)(\d*)$/.exec(node);
  const letters = (match?.[1] ?? node).toUpperCase();
  const suffix = match?.[2] ?? "";
  const short = table.get(letters) ?? letters;
  const aliased = ALIASES[short] ?? short;
  // Suffix 1 is every numbered node's default (`WINDow[1]`, `MARKer[1]`).
  return suffix === "1" ? aliased : `${aliased}${suffix}`;
}

/** Drops the optional nodes of the SCPI trees the allowlist covers. */
function withoutOptionalNodes(nodes: string[]): string[] {
  const out = nodes[0] === "SENS" ? nodes.slice(1) : [...nodes];
  const drop = (index: number) => out.splice(index, 1);
  if (out[0] === "BAND" && out[1] === "RES") drop(1);
  const scale = out.indexOf("SCAL");
  if (scale > 0 && out[scale - 1] === "Y") drop(scale);
  if (out[0] === "SYST" && out[1] === "ERR" && out[2] === "NEXT") drop(2);
  if (out[0] === "INIT" && out[1] === "IMM") drop(1);
  if (out[0] === "FORM" && out[1] === "DATA") drop(1);
  return out;
}

/** Parses one header (no parameters); undefined when it is not a SCPI header. */
export function parseHeader(header: string, table: MnemonicTable = DEFAULT_TABLE, parentPath: string[] = []): ParsedHeader | undefined {
  const match = HEADER.exec(header);
  if (!match) return undefined;
  const absolute = match[1] === ":";
  const body = match[2] ?? "";
  const isQuery = match[3] === "?";
  if (body.startsWith("*")) {
    if (absolute) return undefined;
    const nodes = [body.toUpperCase()];
    return { nodes, fullNodes: nodes, isQuery, isCommon: true, absolute: false };
  }
  const own = body.split(":").map((node) => canonicalNode(node, table));
  const fullNodes = absolute ? own : [...parentPath, ...own];
  return { nodes: withoutOptionalNodes(fullNodes), fullNodes, isQuery, isCommon: false, absolute };
}

function canonicalText(parsed: ParsedHeader): string {
  return `${parsed.nodes.join(":")}${parsed.isQuery ? "?" : ""}`;
}

function describeControl(line: string): string | undefined {
  if (/[\r\n]/.test(line)) return "it holds a line break, so a second command could ride along with the query";
  if (/[\u0000-\u001f\u007f]/.test(line)) return "it holds a control character";
  if (/[^\u0020-\u007e]/.test(line)) return "it holds characters outside printable ASCII";
  return undefined;
}

/** An allowlist: the defaults plus configured extra queries. */
export class ScpiAllowlist {
  readonly entries: readonly string[];
  readonly #allowed: Set<string>;
  readonly #table: MnemonicTable;

  /** Throws an Error naming the entry when an extra entry is not a query header. */
  constructor(extra: readonly string[] = []) {
    this.#table = mnemonicTable(mnemonicsIn(extra));
    this.entries = [...DEFAULT_SCPI_ALLOWLIST, ...extra];
    this.#allowed = new Set();
    for (const entry of this.entries) {
      const parsed = parseHeader(entry.trim(), this.#table);
      if (!parsed || !parsed.isQuery)
        throw new Error(`${JSON.stringify(entry)} is not a SCPI query header (expected something like ":SENS:DET:TRAC?")`);
      const canonical = canonicalText(parsed);
      if (STATE_CHANGERS.some(([pattern]) => pattern.test(canonical.replace(/\?$/, "")))) {
        throw new Error(`${JSON.stringify(entry)} cannot be allowlisted: ${canonical} belongs to a state-changing subsystem`);
      }
      this.#allowed.add(canonical);
    }
  }

  /** The canonical form of a header, e.g. `:SENSe:FREQuency:CENTer?` -> `FREQ:CENT?`; undefined if it is not one. */
  canonical(header: string): string | undefined {
    const parsed = parseHeader(header.trim(), this.#table);
    return parsed ? canonicalText(parsed) : undefined;
  }

  /** Checks a whole line; refuses all of it when any part is not an allowlisted query. */
  check(input: string): ScpiCheck {
    const line = input.trim();
    const refuse = (refusals: ScpiRefusal[]): ScpiCheck => ({
      ok: false,
      refusals,
      message: `refused ${JSON.stringify(line)}: ${refusals.map((r) => (r.part === line ? r.reason : `${JSON.stringify(r.part)}: ${r.reason}`)).join("; ")}. Nothing was sent to the instrument (the bridge is read-only).`,
    });
    if (line === "") return refuse([{ part: line, reason: "the line is empty" }]);
    if (line.length > MAX_SCPI_LINE)
      return refuse([{ part: line.slice(0, 40) + "...", reason: `the line is longer than ${MAX_SCPI_LINE} characters` }]);
    const control = describeControl(line);
    if (control) return refuse([{ part: line, reason: control }]);

    const refusals: ScpiRefusal[] = [];
    const queries: ScpiQuery[] = [];
    let parentPath: string[] = [];
    const parts = line.split(";");
    for (const rawPart of parts) {
      const part = rawPart.trim();
      if (part === "") {
        refusals.push({ part: line, reason: "it has an empty command between semicolons" });
        continue;
      }
      const [header = "", ...params] = part.split(/\s+/);
      const parsed = parseHeader(header, this.#table, parentPath);
      if (!parsed) {
        refusals.push({ part, reason: "it is not a SCPI header" });
        continue;
      }
      if (!parsed.isCommon) parentPath = parsed.fullNodes.slice(0, -1);
      const canonical = canonicalText(parsed);
      const bare = canonical.replace(/\?$/, "");
      const changer = STATE_CHANGERS.find(([pattern]) => pattern.test(bare));
      if (!parsed.isQuery) {
        refusals.push({
          part,
          reason: `it would change instrument state (${changer ? changer[1] : "a command without '?' sets a value"})`,
        });
      } else if (PARAMETER_QUERIES.has(canonical)) {
        const { pattern, expected } = PARAMETER_QUERIES.get(canonical)!;
        const param = params.join(" ");
        if (params.length !== 1 || !pattern.test(param)) {
          refusals.push({ part, reason: `${canonical} takes ${expected}${param === "" ? "" : `, not ${JSON.stringify(param)}`}` });
        } else if (parts.length > 1) {
          refusals.push({ part, reason: `${canonical} must be alone on its line` });
        } else {
          queries.push({ text: part, canonical, wire: `:${canonical} ${param.toUpperCase()}` });
        }
      } else if (params.length > 0) {
        refusals.push({ part, reason: "a query with parameters is not on the read-only allowlist" });
      } else if (!this.#allowed.has(canonical)) {
        refusals.push({ part, reason: `${canonical} is not on the read-only allowlist (add it with --scpi-allow if it only reads)` });
      } else {
        queries.push({ text: part, canonical, wire: parsed.isCommon ? canonical : `:${canonical}` });
      }
    }
    return refusals.length > 0 ? refuse(refusals) : { ok: true, queries };
  }
}
