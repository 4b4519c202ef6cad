import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isListening } from "../../agent/transports/mqtt/localBroker.js";
import { ROOT, unbuiltCheckout } from "../helpers/bundle.js";
import { portHolder } from "../helpers/mosquitto.js";
import { tempDir } from "../helpers/models.js";
import { expectedFragments, parseReadmeBlocks } from "../helpers/readmeBlocks.js";
import type { ReadmeBlock } from "../helpers/readmeBlocks.js";

// Every fenced block of README.md, run verbatim in a copy of the checkout that was never built
// (no dist/), as a newcomer pastes them; blocks that cannot run here carry a marker saying why
// (test/helpers/readmeBlocks.ts). Blocks run one after another in README order: later examples
// use files earlier ones made (t.gguf) and agents started in the background.

const README = path.join(ROOT, "README.md");
const { blocks, problems } = parseReadmeBlocks(readFileSync(README, "utf8"));
const copy = path.join(tempDir("iagent-readme-"), "checkout");
const BLOCK_TIMEOUT_MS = 180_000;
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

// A newcomer's shell: Node's folder and the system's, none of this machine's extra tool paths
// (a pyenv python3 without paho would shadow Debian's python3-paho-mqtt), and no agent settings.
const env: NodeJS.ProcessEnv = {
  ...Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(IAGENT_|INSTRUMENT_AGENT_|npm_|VITEST|NODE_OPTIONS$|NODE_ENV$)/.test(name)),
  ),
  PATH: [path.dirname(process.execPath), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].join(
    path.delimiter,
  ),
};

interface Requirement {
  /** Checked only when a block that runs matches. */
  neededBy: RegExp;
  missing(): string | undefined;
}

function has(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`], { env }).status === 0;
}

const tools: Requirement[] = [
  {
    neededBy: /mosquitto_|ask --via|paho/,
    missing: () =>
      has("mosquitto")
        ? undefined
        : "mosquitto is not installed: apt-get install -y mosquitto (the README's MQTT examples need the agent to start it as an MQTT 5 broker; .ci/run installs it)",
  },
  ...["mosquitto_rr", "mosquitto_sub"].map((tool) => ({
    neededBy: new RegExp(tool),
    missing: () => (has(tool) ? undefined : `${tool} is not installed: apt-get install -y mosquitto-clients (.ci/run installs it)`),
  })),
  {
    neededBy: /paho/,
    missing: () =>
      spawnSync("python3", ["-c", "import paho.mqtt.client"], { env }).status === 0
        ? undefined
        : "python3 cannot import paho.mqtt: apt-get install -y python3 python3-paho-mqtt (.ci/run installs it)",
  },
  ...["g++", "git"].map((tool) => ({
    neededBy: new RegExp(`(^|\\s)${tool.replace(/\+/g, "\\+")}\\s`, "m"),
    missing: () =>
      has(tool) ? undefined : `${tool} is not installed: apt-get install -y ${tool} (the Speed section builds llama-bench with it)`,
  })),
];

const ports: Array<{ port: number; neededBy: RegExp; what: string }> = [
  {
    port: 1883,
    neededBy: /mosquitto_|ask --via|paho/,
    what: "the README's MQTT examples start the agent's own mosquitto there: stop what listens (a mosquitto service: systemctl stop mosquitto; an instrument-agent run; another test using the default broker) and run this test again",
  },
  {
    port: 5025,
    neededBy: /--serve-sim 5025|:5025/,
    what: "the README's firmware bridge examples serve the simulator there: stop what listens and run this test again",
  },
  {
    port: 8080,
    neededBy: /127\.0\.0\.1:8080/,
    what: "the README's HTTP API examples reach the agent's default HTTP port there: stop what listens and run this test again",
  },
];

async function machineProblems(): Promise<string[]> {
  const runnable = blocks
    .filter((b) => b.kind === "run" || b.kind === "background")
    .map((b) => b.code)
    .join("\n");
  const found = tools
    .filter((t) => t.neededBy.test(runnable))
    .map((t) => t.missing())
    .filter((m): m is string => m !== undefined);
  for (const p of ports)
    if (p.neededBy.test(runnable) && (await isListening("127.0.0.1", p.port)))
      found.push(`something already listens on 127.0.0.1:${p.port} (${portHolder(p.port)}): ${p.what}`);
  return found;
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Started {
  block: ReadmeBlock;
  child: ChildProcess;
  stdout: string;
  stderr: string;
  closed: Promise<Outcome>;
}

/** Starts a block as its own process group, so a timeout or a stop reaches all it started. */
function start(block: ReadmeBlock): Started {
  const [program, args] =
    block.interpreter === "python3" ? ["python3", ["-c", block.code]] : ["bash", ["-e", "-o", "pipefail", "-c", block.code]];
  const child = spawn(program, args as string[], { cwd: copy, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const started = { block, child, stdout: "", stderr: "" } as Started;
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (started.stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (started.stderr += d));
  started.closed = new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout: started.stdout, stderr: started.stderr }));
  });
  return started;
}

const groups = new Set<ChildProcess>();
/** Blocks running in the background now: their output goes into every failure report. */
const running = new Set<Started>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

function tail(text: string, chars = 6000): string {
  return text.length > chars ? `[... ${text.length - chars} chars]\n${text.slice(-chars)}` : text;
}

function report(block: ReadmeBlock, what: string, outcome: Outcome): string {
  return [
    `README.md:${block.line} (${block.section}): ${what}; exit code ${outcome.code}${outcome.signal ? `, signal ${outcome.signal}` : ""}`,
    `--- the block (\`\`\`${block.lang}) ---`,
    block.code.trimEnd(),
    "--- stdout ---",
    tail(outcome.stdout),
    "--- stderr ---",
    tail(outcome.stderr),
    ...[...running]
      .filter((s) => s.block !== block)
      .flatMap((s) => [
        `--- meanwhile in the background, README.md:${s.block.line}${ended(s) ? ` (ended: ${s.child.exitCode ?? s.child.signalCode})` : ""} ---`,
        tail(`${s.stdout}${s.stderr}`, 3000),
      ]),
  ].join("\n");
}

function title(block: ReadmeBlock): string {
  const first = block.code.split("\n").find((l) => l.trim()) ?? "";
  return `README.md:${block.line} ${first.length > 70 ? `${first.slice(0, 70)}...` : first}`;
}

/** The output block right after `block`, if the README shows what it prints. */
function outputAfter(block: ReadmeBlock): ReadmeBlock | undefined {
  const next = blocks[blocks.indexOf(block) + 1];
  return next && next.kind === "output" && next.section === block.section ? next : undefined;
}

function expectOutput(block: ReadmeBlock, outcome: Outcome): void {
  const shown = outputAfter(block);
  if (!shown) return;
  const printed = `${outcome.stdout}\n${outcome.stderr}`;
  const absent = expectedFragments(shown.code).filter((f) => !printed.includes(f));
  expect(
    absent,
    report(block, `printed none of ${JSON.stringify(absent)}, which the output block at README.md:${shown.line} shows`, outcome),
  ).toEqual([]);
}

function ended(started: Started): boolean {
  return started.child.exitCode !== null || started.child.signalCode !== null;
}

async function runBlock(block: ReadmeBlock): Promise<void> {
  const started = start(block);
  groups.add(started.child);
  let stoppedBecause: string | undefined;
  const stop = (why: string) => {
    stoppedBecause ??= why;
    killGroup(started.child, "SIGKILL");
  };
  const timer = setTimeout(() => stop(`did not finish within ${BLOCK_TIMEOUT_MS / 1000} s`), BLOCK_TIMEOUT_MS);
  // A block that waits on a background agent would otherwise wait for the whole timeout.
  const watch = setInterval(() => {
    const gone = [...running].find(ended);
    if (gone) stop(`was stopped: README.md:${gone.block.line}, which it needs in the background, ended while it ran`);
  }, 250);
  const outcome = await started.closed.finally(() => {
    clearTimeout(timer);
    clearInterval(watch);
  });
  groups.delete(started.child);
  killGroup(started.child, "SIGKILL"); // anything it left running in the background
  expect(stoppedBecause, report(block, stoppedBecause ?? "", outcome)).toBeUndefined();
  expect(outcome.code, report(block, "failed", outcome)).toBe(0);
  expectOutput(block, outcome);
}

async function startBackground(block: ReadmeBlock): Promise<Started> {
  const started = start(block);
  groups.add(started.child);
  running.add(started);
  const ready = () => `${started.stdout}\n${started.stderr}`.includes(block.until!);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!ready() && !ended(started) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (ready() && !ended(started)) return started;
  const why = ended(started)
    ? `ended before its output said "${block.until}"`
    : `did not say "${block.until}" within ${READY_TIMEOUT_MS / 1000} s`;
  running.delete(started);
  killGroup(started.child, "SIGKILL");
  throw new Error(report(block, why, await started.closed));
}

/** SIGTERM to the block's process group, as `kill %1` or Ctrl-C in its terminal would do. */
async function stopBackground(started: Started): Promise<void> {
  running.delete(started);
  const block = started.block;
  if (ended(started)) {
    const outcome = await started.closed;
    throw new Error(report(block, "had ended by itself before the end of its section", outcome));
  }
  killGroup(started.child, "SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), STOP_TIMEOUT_MS)));
  const outcome = await Promise.race([started.closed, late]).finally(() => clearTimeout(timer));
  if (outcome === "late") {
    killGroup(started.child, "SIGKILL");
    groups.delete(started.child);
    throw new Error(
      report(block, `still running ${STOP_TIMEOUT_MS / 1000} s after SIGTERM`, {
        code: null,
        signal: null,
        stdout: started.stdout,
        stderr: started.stderr,
      }),
    );
  }
  groups.delete(started.child);
  // npm passes SIGTERM on and then ends as killed by it (143); the program itself must not complain.
  const cleanExit = outcome.code === 0 || outcome.code === 143 || outcome.signal === "SIGTERM";
  expect(cleanExit, report(block, "did not exit cleanly on SIGTERM", outcome)).toBe(true);
  const errors = outcome.stderr.split("\n").filter((l) => /"level":(50|60)\b|^error IA_ERR_/.test(l));
  expect(errors, report(block, "logged errors while stopping", outcome)).toEqual([]);
  expectOutput(block, outcome);
}

beforeAll(async () => {
  unbuiltCheckout(copy, ["README.md"]);
  const missing = await machineProblems();
  if (missing.length > 0) throw new Error(`this machine cannot run the README's examples:\n- ${missing.join("\n- ")}`);
});

afterAll(() => {
  for (const child of groups) killGroup(child, "SIGKILL");
});

it("classifies every fenced block of README.md: run, background, output, or skip with a reason", () => {
  expect(problems, `README.md has blocks that are neither run nor marked:\n${problems.join("\n")}`).toEqual([]);
  expect(blocks.filter((b) => b.kind === "run" || b.kind === "background").length).toBeGreaterThan(0);
});

it("would fail on an example added without being run or marked", () => {
  const added = parseReadmeBlocks(
    ["## New", "```powershell", "Get-Item .", "```", "<!-- readme-test: skip: -->", "```sh", "make", "```"].join("\n"),
  );
  expect(added.problems).toEqual([
    expect.stringContaining("README.md:2: a ```powershell block is neither run nor marked"),
    expect.stringContaining("README.md:5: a skip marker needs a reason"),
  ]);
});

const sections: Array<{ name: string; blocks: ReadmeBlock[] }> = [];
for (const block of blocks) {
  const last = sections.at(-1);
  if (last && last.name === block.section) last.blocks.push(block);
  else sections.push({ name: block.section, blocks: [block] });
}

for (const section of sections) {
  describe.sequential(`README: ${section.name}`, () => {
    const background: Started[] = [];
    for (const block of section.blocks) {
      if (block.kind === "skip") it.skip(`${title(block)} (skip: ${block.reason})`, () => undefined);
      else if (block.kind === "run") it(`${title(block)}`, () => runBlock(block), BLOCK_TIMEOUT_MS + 10_000);
      else if (block.kind === "background")
        it(
          `${title(block)} (background until "${block.until}")`,
          async () => void background.push(await startBackground(block)),
          READY_TIMEOUT_MS + 10_000,
        );
    }
    for (const block of section.blocks.filter((b) => b.kind === "background")) {
      it(
        `README.md:${block.line} stops cleanly on SIGTERM at the end of "${section.name}"`,
        async () => {
          const started = background.find((s) => s.block === block);
          expect(started, `README.md:${block.line} was not started`).toBeDefined();
          await stopBackground(started!);
        },
        STOP_TIMEOUT_MS + 10_000,
      );
    }
  });
}

it("ran the blocks in a copy that was never built", () => {
  expect(existsSync(path.join(copy, "dist"))).toBe(false);
});
