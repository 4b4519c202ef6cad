import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_NOTICE } from "../../agent/console/consoleText.js";
import { DEMO_REPLY } from "../../models/modelResolver.js";
import { findMosquitto, isListening } from "../../agent/transports/mqtt/localBroker.js";
import { unbuiltCheckout } from "../helpers/bundle.js";
import { freePort, portHolder } from "../helpers/mosquitto.js";
import { tempDir } from "../helpers/models.js";
import { requireTool, runCommand } from "../helpers/packRelease.js";
import { startTmux } from "../helpers/tmux.js";
import type { TmuxSession } from "../helpers/tmux.js";

// The README's quick start as a newcomer meets it: a checkout that was never built (no dist/,
// no models-data, no state-data), `npm start` in a real terminal, a question typed at the
// prompt, and an MQTT 5 question from a client other people wrote (mosquitto_rr).

const INSTALL = "apt-get install tmux mosquitto mosquitto-clients";
const BROKER_PORT = 1883;
const copy = path.join(tempDir("iagent-quick-start-"), "checkout");
// As agentIdFrom in agent/mqttSettings.ts derives the default --agent-id.
const agentId = hostname().replace(/[/#+\s]/g, "-") || "agent";
const askTopic = `instrument-agent/${agentId}/ask`;
const QUESTION = "what is RBW?";

/** A log line in its terminal form (`HH:MM:SS LEVEL ...`), anywhere in a line: inside an answer it need not start one. */
const LOG_LINE = /\b\d{2}:\d{2}:\d{2} (TRACE|DEBUG|INFO|WARN|ERROR|FATAL)\b/;
const CHATTY_LOG_LINE = /\b\d{2}:\d{2}:\d{2} (TRACE|DEBUG|INFO)\b/;
const PINO_JSON = /\{"level":/;
const STATS_LINE = /^\[\d+ tokens, [\d.]+ tokens\/s, first token \d+ ms\]$/;
const PROMPT = ">";
const BANNER = /^instrument-agent: demo, \d+ threads, context \d+, mlock (on|off)\. \/help for commands\.$/;

let tmux: TmuxSession | undefined;
let rrBinary: string;

function lines(screen: string): string[] {
  return screen.split("\n");
}

function bannerIndex(screen: string): number {
  return lines(screen).findIndex((line) => BANNER.test(line));
}

function terminal(): TmuxSession {
  if (!tmux) throw new Error("the tmux session did not start (see beforeAll)");
  return tmux;
}

/** The environment of a fresh login shell: none of the test runner's or a developer's agent settings. */
function newcomerEnv(mirror: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(IAGENT_|INSTRUMENT_AGENT_|VITEST|npm_|TMUX)/.test(key) || ["NODE_ENV", "NO_COLOR", "FORCE_COLOR"].includes(key)) continue;
    env[key] = value;
  }
  // "No internet needed": a download source that refuses at once, so a CI host with internet
  // also gets the demo model instead of a multi-GB download.
  env.IAGENT_MODEL_MIRROR = mirror;
  return env;
}

/** Log lines after the banner that are not directly above the prompt (or another log line above it). */
function misplacedLogLines(screen: string): string[] {
  const all = lines(screen);
  const start = bannerIndex(screen);
  const misplaced: string[] = [];
  for (let i = start + 1; i < all.length; i++) {
    if (!LOG_LINE.test(all[i]!)) continue;
    const next = all[i + 1];
    if (next === undefined || !(next === PROMPT || next.startsWith(`${PROMPT} `) || LOG_LINE.test(next))) misplaced.push(all[i]!);
  }
  return misplaced;
}

/** The mosquitto the agent started, if it outlived a failed test: its pid file names it. */
function stopLeftoverBroker(): void {
  const dataDir = path.join(copy, "state-data", "mosquitto");
  try {
    const pid = Number(readFileSync(path.join(dataDir, "mosquitto.pid"), "utf8").trim());
    if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dataDir)) process.kill(pid, "SIGTERM");
  } catch {
    // No pid file, or the broker is gone: nothing to stop.
  }
}

beforeAll(async () => {
  requireTool("tmux", INSTALL);
  rrBinary = requireTool("mosquitto_rr", INSTALL);
  // Without mosquitto the agent falls back to aedes, which speaks no MQTT 5.
  if (!findMosquitto()) throw new Error(`mosquitto is missing: install it with \`${INSTALL}\` (.ci/run does)`);
  if (await isListening("127.0.0.1", 8080)) {
    throw new Error(
      `something already listens on 127.0.0.1:8080 (${portHolder(8080)}); npm start's HTTP API needs that port: stop it and run again`,
    );
  }
  if (await isListening("127.0.0.1", BROKER_PORT)) {
    throw new Error(
      `something already listens on 127.0.0.1:${BROKER_PORT} (${portHolder(BROKER_PORT)}); npm start's embedded broker needs that port: stop it and run again`,
    );
  }
  unbuiltCheckout(copy);
  tmux = startTmux({ cwd: copy, command: "npm start", env: newcomerEnv(`http://127.0.0.1:${await freePort()}`) });
});

afterAll(() => {
  tmux?.dispose();
  stopLeftoverBroker();
});

describe("the README quick start: npm start in a terminal, on a checkout never built", () => {
  it("makes and loads the demo model, then shows the banner with the MQTT 5 broker and the prompt", async () => {
    // The first demo model is written, validated and loaded on 2 busy cores.
    const screen = await terminal().waitFor("the banner and the prompt", (s) => bannerIndex(s) >= 0 && lines(s).at(-1) === PROMPT, 180_000);
    const shown = lines(screen).slice(bannerIndex(screen));
    expect(shown[1], screen).toBe(DEMO_NOTICE);
    // "the broker already listening" here: something took the port after the check in beforeAll.
    expect(
      shown.find((line) => line.startsWith("mqtt ")),
      `${screen}\n(on ${BROKER_PORT}: ${portHolder(BROKER_PORT)})`,
    ).toMatch(
      new RegExp(
        `^mqtt {5}online: mosquitto \\S+ \\(MQTT 5\\) at mqtt://127\\.0\\.0\\.1:${BROKER_PORT}, started by the agent; questions to ${askTopic.replace(/[.]/g, "\\.")}$`,
      ),
    );
    expect(screen, screen).not.toMatch(CHATTY_LOG_LINE);
    expect(screen, screen).not.toMatch(PINO_JSON);
    expect(existsSync(path.join(copy, "models-data")), "npm start stores the demo model it made").toBe(true);
  }, 200_000);

  it("answers a typed question, with no log line inside the prompt or the answer", async () => {
    const session = terminal();
    const promptAt = lines(session.screen()).length - 1;
    session.type(QUESTION);
    session.press("Enter");
    const screen = await session.waitFor(
      "the answer's stats line and the prompt after it",
      (s) => {
        const all = lines(s);
        return all.some((line, i) => i > promptAt && STATS_LINE.test(line) && all[i + 1] === PROMPT);
      },
      120_000,
    );
    const all = lines(screen);
    // Log lines that arrived at the idle prompt before the question are above it, by design.
    let questionAt = promptAt;
    while (questionAt < all.length && LOG_LINE.test(all[questionAt]!)) questionAt++;
    const statsAt = all.findIndex((line, i) => i > questionAt && STATS_LINE.test(line));
    expect(all[questionAt], `the prompt holds only the question; the screen:\n${screen}`).toBe(`${PROMPT} ${QUESTION}`);
    const answer = all.slice(questionAt + 1, statsAt);
    // The demo model's one answer, its short honest text (tmux wraps it; compare without the breaks).
    const unwrapped = (text: string) => text.replace(/\s+/g, "");
    expect(unwrapped(answer.join("")), `the demo model's text after the question; the screen:\n${screen}`).toBe(unwrapped(DEMO_REPLY));
    const inside = all.slice(questionAt, statsAt + 2);
    expect(
      inside.filter((line) => LOG_LINE.test(line) || PINO_JSON.test(line)),
      `no log line inside the prompt or the answer; the screen:\n${screen}`,
    ).toEqual([]);
    expect(all[statsAt + 1], screen).toBe(PROMPT);
    expect(screen, screen).not.toMatch(CHATTY_LOG_LINE);
  }, 150_000);

  it("gives mosquitto_rr (MQTT 5, response topic) one final answer", async () => {
    const result = await runCommand(
      rrBinary,
      [
        "-h",
        "127.0.0.1",
        "-p",
        String(BROKER_PORT),
        "-V",
        "mqttv5",
        "-t",
        askTopic,
        "-e",
        "reply/me",
        "-m",
        '{"prompt":"hi"}',
        "-W",
        "120",
      ],
      { timeoutMs: 130_000 },
    );
    const screen = terminal().screen();
    const context = `mosquitto_rr exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}\nthe screen:\n${screen}`;
    expect(result.stderr, context).toBe("");
    expect(result.code, context).toBe(0);
    const replies = result.stdout.trim().split("\n");
    expect(replies, context).toHaveLength(1);
    const reply = JSON.parse(replies[0]!) as { done?: boolean; agent?: string; text?: unknown; error?: unknown };
    expect(reply, context).toMatchObject({ done: true, agent: agentId });
    expect(reply.error, context).toBeUndefined();
    expect(reply.text, context).toBe(DEMO_REPLY);
    // The console stays at its prompt: whatever the MQTT answer logged sits above it.
    expect(lines(screen).at(-1), context).toBe(PROMPT);
    expect(misplacedLogLines(screen), context).toEqual([]);
    expect(screen, context).not.toMatch(CHATTY_LOG_LINE);
    expect(screen, context).not.toMatch(PINO_JSON);
  }, 150_000);

  it("/bye ends npm start with exit status 0 and stops the broker it started", async () => {
    const session = terminal();
    session.type("/bye");
    session.press("Enter");
    const status = await session.waitForExit(30_000);
    const screen = session.screen();
    expect(status, `exit status of npm start; the screen:\n${screen}`).toBe(0);
    expect(
      await isListening("127.0.0.1", BROKER_PORT),
      `nothing listens on ${BROKER_PORT} after /bye (${portHolder(BROKER_PORT)}); the screen:\n${screen}`,
    ).toBe(false);
    // After /bye the console is gone; a shutdown warning below it is inside no prompt.
    const byeAt = lines(screen).lastIndexOf(`${PROMPT} /bye`);
    expect(byeAt, screen).toBeGreaterThan(0);
    expect(
      misplacedLogLines(
        lines(screen)
          .slice(0, byeAt + 1)
          .join("\n"),
      ),
      screen,
    ).toEqual([]);
    expect(screen, screen).not.toMatch(CHATTY_LOG_LINE);
    expect(existsSync(path.join(copy, "dist")), "npm start needs no build").toBe(false);
  }, 40_000);
});
