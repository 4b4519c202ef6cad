/**
 * The fenced blocks of a README and what a test does with each. A block is classified by the
 * HTML comment on the line right before its fence, else by its language:
 *
 * - `<!-- readme-test: skip: <reason> -->`: not run; the reason is required.
 * - `<!-- readme-test: background until "<text>" -->`: a sh block started in the background;
 *   later blocks run once its output holds `<text>`; it is stopped at the end of its section.
 * - `<!-- readme-test: output -->`, or an unmarked ```text / ```json block: what the run block
 *   before it prints; each line's text (between `...` elisions) must appear in that output.
 * - unmarked ```sh / ```bash / ```shell: run with bash; unmarked ```python: run with python3.
 *
 * Any other block, a marker that is not right before a fence, or a marker this parser does not
 * know is a problem, so no example is added to the README without being run or marked.
 */

export type BlockKind = "run" | "background" | "skip" | "output";

export interface ReadmeBlock {
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's info string, lower case (`sh`, `python`, `text`; "" when none). */
  lang: string;
  /** The block's text, without the fences, ending in a newline. */
  code: string;
  /** The nearest `##` or `###` heading above the block. */
  section: string;
  kind: BlockKind;
  /** `run` and `background` blocks: the program the code is given to. */
  interpreter?: "bash" | "python3";
  /** `skip`: why the block is not run. */
  reason?: string;
  /** `background`: the text its output must hold before later blocks run. */
  until?: string;
}

export interface ParsedReadme {
  blocks: ReadmeBlock[];
  /** `README.md:<line>: <what is wrong>`; empty when every block is classified. */
  problems: string[];
}

const SHELL_LANGS = new Set(["sh", "bash", "shell"]);
const OUTPUT_LANGS = new Set(["text", "json"]);
const MARKER = /^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$/;
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const HEADING = /^#{2,3}\s+(.+?)\s*#*\s*$/;

/** A closing fence: the opener's character, at least as many, nothing after. */
function closes(line: string, opener: string): boolean {
  const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
  return close !== null && close[1]![0] === opener[0] && close[1]!.length >= opener.length;
}

function interpreterFor(lang: string): ReadmeBlock["interpreter"] {
  if (SHELL_LANGS.has(lang)) return "bash";
  if (lang === "python") return "python3";
  return undefined;
}

type Marker = { kind: "skip"; reason: string } | { kind: "background"; until: string } | { kind: "output" };

function readMarker(text: string): Marker | string {
  const skip = /^skip:\s*(.*)$/.exec(text);
  if (skip)
    return skip[1]
      ? { kind: "skip", reason: skip[1] }
      : "a skip marker needs a reason: <!-- readme-test: skip: <why it cannot run here> -->";
  const background = /^background until "(.+)"$/.exec(text);
  if (background) return { kind: "background", until: background[1]! };
  if (text === "output") return { kind: "output" };
  return `unknown readme-test marker "${text}": expected skip: <reason>, background until "<text>", or output`;
}

function classify(
  lang: string,
  marker: Marker | undefined,
  file: string,
  line: number,
  problems: string[],
): Pick<ReadmeBlock, "kind" | "interpreter" | "reason" | "until"> {
  const interpreter = interpreterFor(lang);
  if (marker?.kind === "skip") return { kind: "skip", reason: marker.reason };
  if (marker?.kind === "output") return { kind: "output" };
  if (marker?.kind === "background") {
    if (interpreter !== "bash") problems.push(`${file}:${line}: only a sh block can run in the background, not \`\`\`${lang}`);
    return { kind: "background", interpreter: "bash", until: marker.until };
  }
  if (interpreter) return { kind: "run", interpreter };
  if (OUTPUT_LANGS.has(lang)) return { kind: "output" };
  problems.push(
    `${file}:${line}: a \`\`\`${lang || "(no language)"} block is neither run nor marked: make it a sh or python block that runs here, ` +
      "or put <!-- readme-test: skip: <reason> --> (or <!-- readme-test: output -->) on the line before its fence",
  );
  return { kind: "skip", reason: "unclassified" };
}

/** Splits markdown into its fenced blocks and classifies each (see the module comment). */
export function parseReadmeBlocks(markdown: string, file = "README.md"): ParsedReadme {
  const lines = markdown.split("\n");
  const blocks: ReadmeBlock[] = [];
  const problems: string[] = [];
  let section = "(top)";
  let pending: { marker: Marker; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    const fence = FENCE.exec(text);
    if (fence) {
      const [, ticks, info] = fence;
      const lang = info!.toLowerCase();
      const start = i;
      const body: string[] = [];
      for (i++; i < lines.length && !closes(lines[i]!, ticks!); i++) body.push(lines[i]!);
      if (i >= lines.length) problems.push(`${file}:${start + 1}: the fence is never closed`);
      const marker = pending && pending.line === start - 1 ? pending.marker : undefined;
      pending = undefined;
      blocks.push({ line: start + 1, lang, code: `${body.join("\n")}\n`, section, ...classify(lang, marker, file, start + 1, problems) });
      continue;
    }
    if (pending) {
      problems.push(`${file}:${pending.line + 1}: a readme-test marker must be on the line right before a fence`);
      pending = undefined;
    }
    const heading = HEADING.exec(text);
    if (heading) section = heading[1]!;
    const marker = MARKER.exec(text);
    if (marker) {
      const read = readMarker(marker[1]!);
      if (typeof read === "string") problems.push(`${file}:${i + 1}: ${read}`);
      else pending = { marker: read, line: i };
    }
  }
  if (pending) problems.push(`${file}:${pending.line + 1}: a readme-test marker must be on the line right before a fence`);
  return { blocks, problems };
}

/**
 * The texts an output block promises: each non-empty line, cut at `...` (the README's elision
 * of what varies from run to run: timings, random model text), trimmed.
 */
export function expectedFragments(output: string): string[] {
  return output
    .split("\n")
    .flatMap((line) => line.split(/\.\.\.|…/))
    .map((fragment) => fragment.trim())
    .filter((fragment) => fragment.length > 0);
}
