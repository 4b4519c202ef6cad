import { readdirSync, readFileSync, truncateSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, testClient, waitForStatus } from "../helpers/mqttAgent.js";
import { waitUntil } from "../helpers/wait.js";
import type { AgentProcess, TestClient } from "../helpers/mqttAgent.js";

// Issue 14, "Nothing lost": the agent (the bundle, in a child process) killed with -9 and
// started again on the same --state-dir, against a real mosquitto with persistence and a
// requester with a persistent MQTT 5 session. Each question it accepted gets exactly one
// final; the agent's debug log has one "generation started" line per generation.
const dir = tempDir("iagent-mqtt-nothing-lost-");
let model: string;
const started: AgentProcess[] = [];
const clients: TestClient[] = [];
const brokers: Mosquitto[] = [];

function agent(url: string, id: string, stateDir: string, extra: string[] = []): AgentProcess {
  const args = [...modelArgs(model), "--context", "4096", "--parallel", "1", "--temperature", "0"];
  const process = spawnAgent([...args, "--mqtt", url, "--agent-id", id, "--state-dir", stateDir, "--log-level", "debug", ...extra]);
  started.push(process);
  return process;
}

async function kill9(process: AgentProcess): Promise<void> {
  process.child.kill("SIGKILL");
  expect((await process.exited).signal).toBe("SIGKILL");
}

/** A requester whose session the broker keeps while it waits (clean: false, session expiry 5 min). */
async function requester(url: string, name: string): Promise<TestClient> {
  const made = await testClient(url, { protocolVersion: 5, clientId: name, clean: false, properties: { sessionExpiryInterval: 300 } });
  clients.push(made);
  await made.client.subscribeAsync("lab/nl/#", { qos: 1 });
  return made;
}

function ask(tool: TestClient, base: string, id: string, body: Record<string, unknown>, reply = "lab/nl/r"): Promise<unknown> {
  return tool.client.publishAsync(`${base}/ask`, JSON.stringify({ id, ...body }), {
    qos: 1,
    properties: { responseTopic: reply, correlationData: Buffer.from(id) },
  });
}

/** The ids of the agent's "generation started" debug lines, in order. */
function generations(process: AgentProcess): string[] {
  return process
    .output()
    .split("\n")
    .filter((line) => line.includes('"generation started"'))
    .map((line) => String((JSON.parse(line) as { id: unknown }).id));
}

/** Waits a little after the last final so a second one, if any, would have arrived. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 1500));

beforeAll(async () => {
  model = await synthModel(dir);
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const a of started) await a.stop();
  for (const b of brokers) await b.stop();
});

async function setup(id: string) {
  const mosquitto = await startMosquitto({ persistence: true });
  brokers.push(mosquitto);
  return { mosquitto, base: `instrument-agent/${id}`, stateDir: tempDir(`iagent-state-${id}-`) };
}

describe("nothing lost across kill -9", () => {
  it("killed in the middle of a streamed answer: after the restart exactly one final, its chunks again from seq 0 with restarted: true", async () => {
    const { mosquitto, base, stateDir } = await setup("lost-a");
    const first = agent(mosquitto.url, "lost-a", stateDir);
    await waitForStatus(mosquitto.url, base, "online", first);
    const tool = await requester(mosquitto.url, "nl-tool-a");
    await ask(tool, base, "k1", { prompt: "Tell a long story", stream: true, params: { maxTokens: 1500 } });
    await tool.next("lab/nl/r", (m) => m.seq === 3);
    await kill9(first);
    expect(tool.json("lab/nl/r").some((m) => m.done === true)).toBe(false);

    const second = agent(mosquitto.url, "lost-a", stateDir);
    const final = await tool.next("lab/nl/r", (m) => m.done === true, 90_000);
    expect(final).toMatchObject({ id: "k1", agent: "lost-a" });
    expect(final.finishReason).toMatch(/stop|length/);
    await settle();
    const replies = tool.json("lab/nl/r");
    expect(replies.filter((m) => m.done === true)).toHaveLength(1);
    const firstRestarted = replies.findIndex((m) => m.restarted === true);
    expect(firstRestarted).toBeGreaterThan(3);
    const before = replies.slice(0, firstRestarted);
    const after = replies.slice(firstRestarted, -1);
    expect(before.every((m) => m.restarted === undefined && m.done === undefined)).toBe(true);
    expect(after.map((m) => m.seq)).toEqual(after.map((_, i) => i));
    expect(after.every((m) => m.restarted === true && m.id === "k1")).toBe(true);
    expect(after.map((m) => m.delta).join("")).toBe(final.text);
    expect([...generations(first), ...generations(second)]).toEqual(["k1", "k1"]);
    expect(second.output()).toContain("answering a question left unfinished by the last run");
  }, 180_000);

  it("20 questions, killed after 5 finals: after the restart each has exactly one final, in arrival order, none generated twice", async () => {
    const { mosquitto, base, stateDir } = await setup("lost-b");
    const first = agent(mosquitto.url, "lost-b", stateDir);
    await waitForStatus(mosquitto.url, base, "online", first);
    const tool = await requester(mosquitto.url, "nl-tool-b");
    const ids = Array.from({ length: 20 }, (_, i) => `q${String(i).padStart(2, "0")}`);
    for (const id of ids) await ask(tool, base, id, { prompt: `question number ${id}`, params: { maxTokens: 200 } });
    await tool.next("lab/nl/r", (m) => m.done === true && m.id === "q04", 60_000);
    await kill9(first);
    const answeredBeforeKill = tool.json("lab/nl/r").filter((m) => m.done === true).length;
    // The kill really came with questions still waiting (else this test proves nothing).
    expect(answeredBeforeKill).toBeLessThan(18);

    const second = agent(mosquitto.url, "lost-b", stateDir);
    await tool.next("lab/nl/r", (m) => m.done === true && m.id === "q19", 120_000);
    await settle();
    const finals = tool.json("lab/nl/r").filter((m) => m.done === true);
    expect(finals.map((f) => f.id)).toEqual(ids);
    expect(finals.every((f) => f.error === undefined && f.agent === "lost-b")).toBe(true);
    const generated = [...generations(first), ...generations(second)];
    expect([...new Set(generated)].sort()).toEqual(ids);
    // At most the one question in flight at the kill was generated twice.
    expect(generated.length).toBeGreaterThanOrEqual(20);
    expect(generated.length).toBeLessThanOrEqual(21);
    expect(generations(second)).not.toContain("q00");
  }, 240_000);

  it("after a restart the same id gets the journaled final without a generation, and a session goes on with its earlier turns", async () => {
    const { mosquitto, base, stateDir } = await setup("lost-c");
    const first = agent(mosquitto.url, "lost-c", stateDir);
    await waitForStatus(mosquitto.url, base, "online", first);
    const tool = await requester(mosquitto.url, "nl-tool-c");
    await ask(tool, base, "d1", { prompt: "What does RBW mean?", params: { maxTokens: 12 } });
    const answered = await tool.next("lab/nl/r", (m) => m.done === true && m.id === "d1");
    await ask(tool, base, "s1", { prompt: "First turn about the span", session: "lab-s", params: { maxTokens: 12 } });
    const turn1 = await tool.next("lab/nl/r", (m) => m.done === true && m.id === "s1");
    await kill9(first);

    const second = agent(mosquitto.url, "lost-c", stateDir);
    await waitForStatus(mosquitto.url, base, "online", second);
    await ask(tool, base, "d1", { prompt: "What does RBW mean?", params: { maxTokens: 12 } });
    await ask(tool, base, "s2", { prompt: "Second turn", session: "lab-s", params: { maxTokens: 12 } });
    await ask(tool, base, "c2", { prompt: "Second turn", session: "fresh", params: { maxTokens: 12 } });
    const turn2 = await tool.next("lab/nl/r", (m) => m.done === true && m.id === "s2");
    const control = await tool.next("lab/nl/r", (m) => m.done === true && m.id === "c2");
    await settle();
    const d1 = tool.json("lab/nl/r").filter((m) => m.done === true && m.id === "d1");
    expect(d1).toEqual([answered, answered]);
    expect(generations(second)).toEqual(["s2", "c2"]);
    const prompt = (final: Record<string, unknown>) => (final.usage as { promptTokens: number }).promptTokens;
    // The earlier turn (question and answer) is in the second turn's prompt, not in a fresh session's.
    expect(prompt(turn2)).toBeGreaterThan(prompt(control));
    expect(prompt(turn2)).toBeGreaterThan(prompt(turn1));
  }, 180_000);

  it("MQTT 3.1.1 (replyTo, no correlation data): questions acknowledged before the kill are each answered once after it", async () => {
    const { mosquitto, base, stateDir } = await setup("lost-d");
    const v311 = ["--mqtt-version", "3.1.1"];
    const first = agent(mosquitto.url, "lost-d", stateDir, v311);
    await waitForStatus(mosquitto.url, base, "online", first, 60_000, { protocolVersion: 4 });
    const tool = await testClient(mosquitto.url, { protocolVersion: 4, clientId: "nl-tool-d", clean: false });
    clients.push(tool);
    await tool.client.subscribeAsync("lab/nl/#", { qos: 1 });
    const ids = ["v0", "v1", "v2", "v3", "v4", "v5"];
    for (const id of ids) {
      const body = { id, prompt: `question ${id}`, replyTo: "lab/nl/v", params: { maxTokens: 400 } };
      await tool.client.publishAsync(`${base}/ask`, JSON.stringify(body), { qos: 1 });
    }
    await tool.next("lab/nl/v", (m) => m.done === true && m.id === "v0", 60_000);
    await kill9(first);
    expect(tool.json("lab/nl/v").filter((m) => m.done === true).length).toBeLessThan(ids.length);
    const second = agent(mosquitto.url, "lost-d", stateDir, v311);
    await tool.next("lab/nl/v", (m) => m.done === true && m.id === "v5", 90_000);
    await settle();
    expect(
      tool
        .json("lab/nl/v")
        .filter((m) => m.done === true)
        .map((m) => m.id),
    ).toEqual(ids);
    expect(generations(second).length).toBeGreaterThan(0);
    expect(generations(second)).not.toContain("v0");
  }, 180_000);
});

/** The journal file under `--state-dir` (one folder per agent id and broker). */
function journalFile(stateDir: string): string {
  const root = path.join(stateDir, "journal");
  const [folder, ...others] = readdirSync(root);
  expect(others).toEqual([]);
  return path.join(root, folder!, "requests.jsonl");
}

describe("a journal cut short by a power cut", () => {
  it("starts with one warning, loses at most the torn last record, and keeps every earlier final", async () => {
    const { mosquitto, base, stateDir } = await setup("lost-e");
    const first = agent(mosquitto.url, "lost-e", stateDir);
    await waitForStatus(mosquitto.url, base, "online", first);
    const tool = await requester(mosquitto.url, "nl-tool-e");
    const finals: Record<string, unknown>[] = [];
    for (const id of ["t1", "t2", "t3"]) {
      await ask(tool, base, id, { prompt: `question ${id}`, params: { maxTokens: 8 } });
      finals.push(await tool.next("lab/nl/r", (m) => m.done === true && m.id === id));
    }
    await kill9(first);
    // Cut the last record (t3's final) in half, as a write interrupted by a power cut leaves it.
    const file = journalFile(stateDir);
    const text = readFileSync(file, "utf8");
    const lastLine = text.slice(text.lastIndexOf("\n", text.length - 2) + 1);
    expect(lastLine).toContain('"t3"');
    truncateSync(file, Buffer.byteLength(text) - Math.ceil(Buffer.byteLength(lastLine) / 2));

    const second = agent(mosquitto.url, "lost-e", stateDir);
    await waitForStatus(mosquitto.url, base, "online", second);
    const warnings = second
      .output()
      .split("\n")
      .filter((line) => line.includes("request journal") && line.includes('"level":40'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("dropped a torn last record");
    // t1 and t2 are still journaled: asked again, each gets its stored final without a generation.
    await ask(tool, base, "t1", { prompt: "question t1", params: { maxTokens: 8 } });
    await ask(tool, base, "t2", { prompt: "question t2", params: { maxTokens: 8 } });
    const byId = (id: string) => tool.json("lab/nl/r").filter((m) => m.done === true && m.id === id);
    await waitUntil(() => byId("t1").length === 2 && byId("t2").length === 2, {
      what: "the replayed finals of t1 and t2",
      timeoutMs: 30_000,
    });
    await settle();
    expect(byId("t1")).toEqual([finals[0], finals[0]]);
    expect(byId("t2")).toEqual([finals[1], finals[1]]);
    expect(generations(second).filter((id) => id === "t1" || id === "t2")).toEqual([]);
    // The torn record was t3's final: t3 is unfinished again and answered once more, never silently dropped.
    await waitUntil(() => byId("t3").length === 2, { what: "t3 answered again after its torn final", timeoutMs: 30_000 });
    await settle();
    expect(byId("t3")).toHaveLength(2);
    expect(generations(second).filter((id) => id === "t3")).toEqual(["t3"]);
  }, 180_000);
});

describe("a question older than --mqtt-max-age after a crash", () => {
  it("gets a final IA_ERR_EXPIRED naming its age and the limit, not silence and not an answer", async () => {
    const { mosquitto, base, stateDir } = await setup("lost-f");
    const maxAge = ["--mqtt-max-age", "1"];
    const first = agent(mosquitto.url, "lost-f", stateDir, maxAge);
    await waitForStatus(mosquitto.url, base, "online", first);
    const tool = await requester(mosquitto.url, "nl-tool-f");
    await ask(tool, base, "old1", { prompt: "Tell a long story", stream: true, params: { maxTokens: 1500 } });
    await tool.next("lab/nl/r", (m) => m.seq === 1);
    await kill9(first);
    await new Promise((resolve) => setTimeout(resolve, 2000));

    const second = agent(mosquitto.url, "lost-f", stateDir, maxAge);
    const final = await tool.next("lab/nl/r", (m) => m.done === true && m.id === "old1", 60_000);
    expect(final.error).toMatchObject({ code: "IA_ERR_EXPIRED" });
    expect(String((final.error as { message: string }).message)).toContain("--mqtt-max-age");
    await settle();
    expect(tool.json("lab/nl/r").filter((m) => m.done === true)).toHaveLength(1);
    expect(generations(second)).toEqual([]);
  }, 120_000);
});
