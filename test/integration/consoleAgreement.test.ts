import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import type { RunResult } from "../helpers/bundle.js";
import { modelArgs, tempDir } from "../helpers/models.js";
import { spawnAgent } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { PtyPair, PtyTerminal, requireSocat } from "../helpers/socat.js";

// The same lines typed at both consoles of the real bundle: `chat` with piped stdin, and
// `run --serial` on a socat pty driven as a person at a terminal. Each command must do the
// same on both; only what the medium needs (CRLF, the serial line in /status, what ending
// the conversation does to the process) may differ.

const dir = tempDir("iagent-agree-");
const model = path.join(dir, "tiny.gguf");
const PROMPT = "\r\n> ";
const COMMON = [...modelArgs(model), "--temperature", "0", "--seed", "1", "--max-tokens", "8"];

/** Typed in this order on both consoles; the serial one gets `/status` after `stop` as well. */
const SCRIPT = [
  "/help me",
  "/status",
  "what is the RBW?",
  "/status",
  // A question that starts with a bare-word alias is still a question.
  "stop frequency?",
  "/status",
  "restart",
  "/status",
  "/NOPE now",
  "/scpi *IDN?",
  "stop",
];

/** What each typed line produced, in order. */
type Replies = string[];

function helpCommandLines(reply: string): string[] {
  return reply.split(/\r?\n/).filter((line) => /^ {2}\//.test(line));
}

/** The first word of each `/status` line (`model`, `threads`, ...). */
function statusFields(reply: string): string[] {
  return reply
    .split(/\r?\n/)
    .map((line) => /^([a-z]+) {2,}\S/.exec(line)?.[1])
    .filter((field): field is string => field !== undefined);
}

function history(reply: string): number {
  const match = /history {2}(\d+) messages/.exec(reply);
  if (!match) throw new Error(`no history line in ${JSON.stringify(reply)}`);
  return Number(match[1]);
}

let chat: RunResult;
let local: Replies;
let serial: Replies;
let serialAfterStop: string;
let serialStillServing: boolean | undefined;

beforeAll(async () => {
  requireSocat();
  const synth = await runAgent(["models", "synth", "--shape", "tiny", "--out", model]);
  expect(synth.code).toBe(0);

  // chat: piped input echoes each line as `> line`, so the output splits at those echoes.
  chat = await runAgent(["chat", ...COMMON, "--log-level", "error"], {
    input: [...SCRIPT, "never asked", ""].join("\n"),
    timeoutMs: 90_000,
  });
  local = [];
  let at = chat.stdout.indexOf(`> ${SCRIPT[0]}\n`);
  for (let i = 0; i < SCRIPT.length; i++) {
    if (at < 0) break;
    const start = at + `> ${SCRIPT[i]}\n`.length;
    const next = i + 1 < SCRIPT.length ? chat.stdout.indexOf(`> ${SCRIPT[i + 1]}\n`, start) : -1;
    local.push(chat.stdout.slice(start, next < 0 ? undefined : next));
    at = next;
  }

  // run --serial: each line typed, then what came back up to the next prompt.
  const pair = new PtyPair(dir, "agree");
  await pair.start();
  const terminal = new PtyTerminal(pair.b);
  await terminal.open();
  let agent: AgentProcess | undefined;
  try {
    agent = spawnAgent(["--serial", pair.a, "--mqtt", "off", ...COMMON, "--log-level", "warn"]);
    await terminal.waitFor(PROMPT, { timeoutMs: 60_000 }).catch((error: Error) => {
      throw new Error(`${error.message}\nagent output:\n${agent?.output()}`);
    });
    const exchange = async (line: string): Promise<string> => {
      const from = terminal.text.length;
      await terminal.type(`${line}\r`);
      const end = await terminal.waitFor(PROMPT, { from, timeoutMs: 30_000 });
      const reply = terminal.text.slice(from, end - PROMPT.length);
      // Drop the echo of the typed line.
      return reply.startsWith(`${line}\r\n`) ? reply.slice(line.length + 2) : reply;
    };
    serial = [];
    for (const line of SCRIPT) serial.push(await exchange(line));
    serialAfterStop = await exchange("/status");
    serialStillServing = agent.child.exitCode === null;
  } finally {
    await terminal.close();
    const stopped = await agent?.stop();
    await pair.kill();
    expect(stopped?.code).toBe(0);
  }
}, 180_000);

const reply = (replies: Replies, line: string, nth = 0): string => {
  const indexes = SCRIPT.flatMap((typed, i) => (typed === line ? [i] : []));
  const index = indexes[nth];
  if (index === undefined) throw new Error(`"${line}" #${nth} is not in the script`);
  const text = replies[index];
  if (text === undefined) throw new Error(`no reply to "${line}" #${nth}`);
  return text;
};

describe("chat and the serial console agree on every command", () => {
  it("chat read the whole script and exited 0", () => {
    expect(chat.code, chat.stderr).toBe(0);
    expect(local, chat.stdout).toHaveLength(SCRIPT.length);
  });

  it("/help with a word after it prints the same command lines on both", () => {
    const onChat = helpCommandLines(reply(local, "/help me"));
    const onSerial = helpCommandLines(reply(serial, "/help me"));
    expect(onChat.length, reply(local, "/help me")).toBeGreaterThanOrEqual(5);
    expect(onChat).toEqual(onSerial);
    expect(onChat.join("\n")).toContain("/reset, restart");
    expect(onChat.join("\n")).toContain("/bye, stop");
    expect(reply(local, "/help me")).not.toContain("unknown command");
  });

  it("/status shows the same fields; serial adds only its line settings", () => {
    const onChat = statusFields(reply(local, "/status"));
    const onSerial = statusFields(reply(serial, "/status"));
    expect(onChat).toEqual(expect.arrayContaining(["model", "threads", "mlock", "speed", "queue", "history"]));
    expect(onSerial).toEqual([...onChat, "line"]);
    const modelLine = (text: string) => text.split(/\r?\n/).find((line) => line.startsWith("model "));
    expect(modelLine(reply(local, "/status"))).toBe(modelLine(reply(serial, "/status")));
  });

  it("a question, also one starting with `stop`, reaches the model on both; `restart` forgets the history on both", () => {
    for (const replies of [local, serial]) {
      expect([0, 1, 2, 3].map((nth) => history(reply(replies, "/status", nth)))).toEqual([0, 2, 4, 0]);
      expect(reply(replies, "restart")).toContain("(conversation cleared)");
      expect(reply(replies, "stop frequency?")).not.toContain("goodbye");
    }
  });

  it("an unknown slash command and /scpi without an instrument say the same on both", () => {
    expect(reply(local, "/NOPE now").trim()).toBe("unknown command /NOPE; /help lists the commands");
    expect(reply(serial, "/NOPE now").trim()).toBe("unknown command /NOPE; /help lists the commands");
    expect(reply(local, "/scpi *IDN?")).toContain("no instrument is configured");
    expect(reply(serial, "/scpi *IDN?").trim()).toBe(reply(local, "/scpi *IDN?").trim());
  });

  it("`stop` ends the conversation on both: chat exits, serial greets the next person and keeps serving", () => {
    expect(chat.stdout).not.toContain("never asked");
    expect(reply(local, "stop").trim()).toBe("");
    const stop = reply(serial, "stop");
    expect(stop).toContain("(conversation ended; goodbye)");
    expect(stop).toContain("/help for commands.");
    expect(stop).not.toMatch(/\[\d+ tokens/);
    expect(history(serialAfterStop)).toBe(0);
    expect(serialStillServing).toBe(true);
  });
});
