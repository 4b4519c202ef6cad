import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import { spawnAgent } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { tempDir } from "../helpers/models.js";
import { PtyPair, PtyTerminal, requireSocat } from "../helpers/socat.js";
import { waitUntil } from "../helpers/wait.js";

// The real bundle (`run --serial <pty>`) in a child process with the real node-llama-cpp
// and a tiny synthetic model; the test drives the other end of a socat pty pair as a
// person at a terminal would. A pty ignores the baud rate, so --baud 9600 here checks the
// setting is accepted; the 9600-baud backlog itself is shown with a paced fake link in
// test/unit/serialConsole.test.ts.

const dir = tempDir("iagent-serial-");
const model = path.join(dir, "tiny.gguf");
const PROMPT = "\r\n> ";

const RUN = ["--model", model, "--mqtt", "off", "--mlock", "off", "--threads", "1", "--temperature", "0", "--seed", "1"];

function startAgent(args: string[]): AgentProcess {
  return spawnAgent([...RUN, ...args]);
}

/** Waits for a log line of the agent; fails at once, with its output, if it exits first. */
async function waitForLog(agent: AgentProcess, text: string, timeoutMs = 30_000): Promise<void> {
  await waitUntil(
    () => {
      if (agent.child.exitCode !== null)
        throw new Error(`the agent exited (${agent.child.exitCode}) before logging "${text}":\n${agent.output()}`);
      return agent.output().includes(text);
    },
    { what: `the agent's log line "${text}"`, timeoutMs, intervalMs: 50 },
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${agent.output()}`);
  });
}

/** Types a line and waits for the prompt that follows its handling; returns what came back. */
async function exchange(terminal: PtyTerminal, typed: string | Buffer, timeoutMs = 30_000): Promise<string> {
  const from = terminal.text.length;
  await terminal.type(typed);
  const end = await terminal.waitFor(PROMPT, { from, timeoutMs });
  return terminal.text.slice(from, end);
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

beforeAll(async () => {
  requireSocat();
  const synth = await runAgent(["models", "synth", "--shape", "tiny", "--out", model]);
  expect(synth.code).toBe(0);
});

describe("serial console over a pty pair, against the real bundle", () => {
  const pair = new PtyPair(dir, "main");
  let terminal: PtyTerminal;
  let agent: AgentProcess;

  beforeAll(async () => {
    await pair.start();
    terminal = new PtyTerminal(pair.b);
    await terminal.open();
    agent = startAgent(["--serial", pair.a, "--baud", "9600", "--max-tokens", "24", "--log-level", "info"]);
    await terminal.waitFor(PROMPT, { timeoutMs: 60_000 });
  });

  afterAll(async () => {
    await terminal?.close();
    const stopped = await agent?.stop();
    await pair.kill();
    expect(stopped?.code).toBe(0);
  });

  it("shows the banner and prompt, echoes, streams an answer and prompts again", async () => {
    expect(terminal.text).toContain("/help for commands.");
    expect(terminal.text).toContain("Serial console: UTF-8");
    const reply = await exchange(terminal, "what is the RBW?\r");
    expect(reply.startsWith("what is the RBW?\r\n")).toBe(true);
    expect(reply).toMatch(/\[24 tokens, [\d.]+ tokens\/s, first token \d+ ms\]\r\n> $/);
    const answer = reply.slice("what is the RBW?\r\n".length, reply.indexOf("\r\n[24 tokens"));
    expect(answer.length).toBeGreaterThan(0);
  });

  it("Backspace over 你 erases two columns; Ctrl-U clears the line", async () => {
    const from = terminal.text.length;
    await terminal.type("你");
    await terminal.waitFor("你", { from });
    await terminal.type(Buffer.from([0x7f]));
    await terminal.waitFor("你\b\b  \b\b", { from });
    await terminal.type("x");
    await terminal.type(Buffer.from([0x08]));
    await terminal.waitFor("x\b \b", { from });
    const help = await exchange(terminal, "/help\r");
    expect(help).toContain("/reset, restart");
    await terminal.type("garbage words");
    await terminal.waitFor("garbage words", { from: terminal.text.length - 20 });
    const status = await exchange(terminal, Buffer.concat([Buffer.from([0x15]), Buffer.from("/status\r")]));
    expect(status).toContain(`${"\b".repeat(13)}${" ".repeat(13)}${"\b".repeat(13)}/status\r\n`);
    expect(status).toContain("history  2 messages");
    expect(status).not.toContain("unknown command");
  });

  it("CR, LF and CRLF each submit exactly once, also when CR and LF arrive apart", async () => {
    // A second submission would print a second prompt before the next line's echo: the next
    // line is the barrier, so no sleep is needed to show that nothing more came.
    for (const enter of ["\r", "\n", "\r\n"]) {
      const reply = await exchange(terminal, `/status${enter}`);
      expect(count(reply, "history  "), JSON.stringify(enter)).toBe(1);
      const from = terminal.text.length;
      await exchange(terminal, "/nope\r");
      expect(terminal.text.slice(from).startsWith("/nope\r\n"), `one prompt after ${JSON.stringify(enter)}`).toBe(true);
    }
    await exchange(terminal, "/status\r");
    const from = terminal.text.length;
    await terminal.type("\n");
    await exchange(terminal, "/nope\r");
    expect(terminal.text.slice(from).startsWith("/nope\r\n"), "the LF after a CR was not a second Enter").toBe(true);
  });

  it("random bytes, invalid UTF-8 and a 10 KB line get error lines; then a normal question is answered", async () => {
    let seed = 4;
    const random = Buffer.from(Array.from({ length: 4096 }, () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) & 0xff));
    const from = terminal.text.length;
    await terminal.type(random);
    // Ctrl-C stops any answer a random line may have started; Ctrl-U and Enter end the rest.
    await terminal.type(Buffer.from([0x03, 0x15, 0x0d]));
    await terminal.settle(1500);
    expect(terminal.text.slice(from)).toMatch(/error IA_ERR_SERIAL_INPUT: byte 0x[0-9a-f]{2} at character \d+ is not UTF-8/);

    const invalid = await exchange(terminal, Buffer.from([0x61, 0x62, 0xff, 0xfe, 0x63, 0x0d]));
    expect(invalid).toContain("error IA_ERR_SERIAL_INPUT: byte 0xff at character 3 is not UTF-8");

    const long = await exchange(terminal, `${"x".repeat(10 * 1024)}\r`);
    expect(long).toContain("error IA_ERR_SERIAL_LINE_TOO_LONG: the line has 10240 characters; the limit is 1000");
    expect(count(long, "x")).toBeLessThanOrEqual(1000 + 10);

    const normal = await exchange(terminal, "hello\r");
    expect(normal).toMatch(/\[24 tokens, [\d.]+ tokens\/s/);
    expect(agent.child.exitCode).toBeNull();
  });

  it("/reset clears the conversation, /status reports it, /bye ends it and shows the banner", async () => {
    await exchange(terminal, "/reset\r");
    await exchange(terminal, "first question\r");
    expect(await exchange(terminal, "/status\r")).toContain("history  2 messages");
    expect(await exchange(terminal, "restart\r")).toContain("(conversation cleared)");
    const status = await exchange(terminal, "/status\r");
    expect(status).toContain("history  0 messages");
    expect(status).toContain("model    tiny.gguf");
    expect(status).toMatch(/line     \S+main-agent 9600 8N1, flow none, utf8, wrap off, line limit 1000/);
    await exchange(terminal, "second question\r");
    const bye = await exchange(terminal, "/bye\r");
    expect(bye).toContain("(conversation ended; goodbye)");
    expect(bye).toContain("/help for commands.");
    expect(count(bye, "> ")).toBe(1);
    expect(await exchange(terminal, "/status\r")).toContain("history  0 messages");
    expect(await exchange(terminal, "/scpi *IDN?\r")).toContain("no instrument is configured");
    expect(await exchange(terminal, "/nope\r")).toContain("unknown command /nope");
  });

  it("comes back when the pty is removed and recreated, without restarting the agent", async () => {
    await terminal.close();
    await pair.kill();
    await waitForLog(agent, "went away; reopening when it comes back");
    await waitForLog(agent, "cannot be opened");
    await pair.start();
    terminal = new PtyTerminal(pair.b);
    await terminal.open();
    await waitForLog(agent, "serial port is back; console open");
    // The banner's prompt first, so the exchange below does not take it for the one after /status.
    await terminal.waitFor(PROMPT);
    const status = await exchange(terminal, "/status\r");
    expect(status).toContain("history  0 messages");
    expect(await exchange(terminal, "hello again\r")).toMatch(/\[24 tokens/);
    expect(agent.child.exitCode).toBeNull();
  });

  it("sends CRLF line ends only: no bare LF or CR reached the terminal", () => {
    const text = terminal.text;
    expect(text.length).toBeGreaterThan(100);
    expect(text).not.toMatch(/(?<!\r)\n/);
    expect(text).not.toMatch(/\r(?!\n)/);
  });
});

describe("serial console: Ctrl-C during a long answer, and a port that is missing at start", () => {
  const pair = new PtyPair(dir, "late");
  let terminal: PtyTerminal;
  let agent: AgentProcess;

  afterAll(async () => {
    await terminal?.close();
    const stopped = await agent?.stop();
    await pair.kill();
    expect(stopped?.code).toBe(0);
  });

  it("a missing port is logged and retried; the console appears when the port does", async () => {
    agent = startAgent(["--serial", pair.a, "--baud", "9600", "--max-tokens", "20000", "--log-level", "info"]);
    await waitForLog(agent, "IA_ERR_SERIAL_PORT");
    expect(agent.output()).toContain(`serial port ${pair.a} cannot be opened`);
    expect(agent.child.exitCode).toBeNull();
    await pair.start();
    terminal = new PtyTerminal(pair.b);
    await terminal.open();
    await waitForLog(agent, "serial port is back; console open");
    // The banner and its prompt may still be on the way: wait for them first, so the
    // exchange below does not mistake the banner's prompt for the one after /status.
    await terminal.waitFor(PROMPT);
    expect(await exchange(terminal, "/status\r")).toContain("history  0 messages");
  });

  it("Ctrl-C mid-answer returns the prompt and no answer text follows", async () => {
    const from = terminal.text.length;
    await terminal.type("tell me a very long story\r");
    const answerStart = await terminal.waitFor("tell me a very long story\r\n", { from });
    // The answer is streaming: text arrives before generation (20000 tokens) could be done.
    await terminal.waitFor(/[^]{300}/, { from: answerStart });
    await terminal.type(Buffer.from([0x03]));
    const end = await terminal.waitFor(`^C\r\n(answer cancelled)${PROMPT}`, { from: answerStart });
    // The next line is the barrier: what the cancelled answer left behind would come before its echo or inside its reply.
    const status = await exchange(terminal, "/status\r");
    expect(terminal.text.slice(end).startsWith("/status\r\n")).toBe(true);
    expect(status).toMatch(/^\/status\r\nmodel {4}[^]*\r\nline {5}[^\r\n]*\r\n> $/);
    expect(status).toContain("history  0 messages");
    // The prompt comes back at once; the engine may take a moment more to stop generating, so
    // the slot is free within a few seconds, not necessarily by the first /status.
    let queue = status;
    for (let tries = 0; !queue.includes("queue    0 answering, 0 waiting") && tries < 20; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      queue = await exchange(terminal, "/status\r");
    }
    expect(queue).toContain("queue    0 answering, 0 waiting");
  });
});
