import type { IPublishPacket } from "mqtt";
import { describe, expect, it } from "vitest";
import type { GenerateRequest, GenerateResult, ModelRuntime, RuntimeInfo } from "../../agent/engine/modelRuntime.js";
import { AnswerService } from "../../agent/service/answerService.js";
import type { JournalEntry, JournalMessage, JournaledQuestion } from "../../agent/service/journal/requestJournal.js";
import { describeAge } from "../../agent/transports/mqtt/mqttRequest.js";
import type { OutboxEntry } from "../../agent/transports/mqtt/outbox.js";
import { RequestHandler } from "../../agent/transports/mqtt/requestHandler.js";
import type { AnswerJournal } from "../../agent/transports/mqtt/requestHandler.js";
import { agentTopics } from "../../agent/transports/mqtt/topics.js";
import { RequestQueue } from "../../agent/service/requestQueue.js";
import { createLogger } from "../../common/logger.js";

// The MQTT request handler with a journal (README "MQTT API", "Nothing lost, nothing answered
// twice"): what is written before the acknowledgement, before a final goes out, and what a
// restart does with what it finds. The journal is an in-memory fake that records the calls.

const NOW = Date.parse("2026-12-04T12:00:00Z");
const topics = agentTopics("ia", "a1");

class FakeJournal implements AnswerJournal {
  readonly entries = new Map<string, JournalEntry>();
  readonly sessions = new Map<string, JournalMessage[]>();
  readonly calls: string[] = [];
  /** When set, `accept` waits for this before it resolves (a slow disk). */
  hold: Promise<void> | undefined;

  async accept(question: JournaledQuestion): Promise<JournalEntry> {
    this.calls.push(`accept ${question.id}`);
    await this.hold;
    const entry = this.entries.get(question.key) ?? { question, state: "accepted" as const };
    this.entries.set(question.key, entry);
    this.calls.push(`accepted ${question.id}`);
    return entry;
  }
  markAnswering(key: string): void {
    const entry = this.entries.get(key);
    if (entry) entry.state = "answering";
  }
  async finish(key: string, final: Record<string, unknown>): Promise<void> {
    this.calls.push(`finish ${String(final.id)}`);
    const entry = this.entries.get(key);
    if (entry) Object.assign(entry, { state: "done", final });
  }
  lookup(key: string): JournalEntry | undefined {
    return this.entries.get(key);
  }
  unfinished(): JournalEntry[] {
    return [...this.entries.values()].filter((e) => e.state === "accepted" || e.state === "answering");
  }
  async saveSession(session: string, messages: JournalMessage[]): Promise<void> {
    this.sessions.set(session, messages);
  }
  session(session: string): JournalMessage[] | undefined {
    return this.sessions.get(session);
  }
}

const info = { modelLabel: "t.gguf", parallelSequences: 1 } as RuntimeInfo;

/** A model that answers "<n words>" in two deltas and records every generation. */
function fakeRuntime(generations: GenerateRequest[]): ModelRuntime {
  return {
    info,
    slots: 1,
    disposed: false,
    async generate(_slot, request) {
      generations.push({ ...request, ...(request.messages ? { messages: [...request.messages] } : {}) });
      request.onDelta?.("an ");
      request.onDelta?.("answer");
      const result: GenerateResult = {
        text: "an answer",
        finishReason: "stop",
        usage: { promptTokens: (request.messages ?? []).length, completionTokens: 2 },
        timings: { ttftMs: 1, tokensPerSecond: 1, promptTokensPerSecond: 1, totalMs: 1, queuedMs: 0 },
      };
      return result;
    },
    countTokens: async (text) => text.length,
    dispose: async () => undefined,
  };
}

function setup(journal: FakeJournal) {
  const generations: GenerateRequest[] = [];
  const published: OutboxEntry[] = [];
  const service = new AnswerService(fakeRuntime(generations), new RequestQueue({ slots: 1 }), { system: "", params: {} });
  const handler = new RequestHandler({
    agentId: "a1",
    topics,
    prefix: "ia",
    payloadLimit: 65_536,
    rateLimitPerMinute: 0,
    service,
    logger: createLogger({ level: "silent" }),
    publish: (entry) => {
      published.push(entry);
      if (entry.kind === "final") journal.calls.push(`publish final ${String(json(entry).id)}`);
    },
    stopping: () => false,
    maxAgeMs: 60 * 60_000,
    now: () => NOW,
  });
  return { handler, generations, published };
}

const json = (entry: OutboxEntry) => JSON.parse(entry.payload.toString()) as Record<string, unknown>;

function ask(handler: RequestHandler, body: Record<string, unknown>, dup = false): Promise<void> {
  const packet = { cmd: "publish", topic: topics.ask, qos: 1, dup, retain: false, payload: Buffer.alloc(0) } as IPublishPacket;
  return handler.handle(topics.ask, Buffer.from(JSON.stringify({ replyTo: "lab/r", ...body })), packet);
}

function question(id: string, arrivedAt: number, request: Record<string, unknown> = {}): JournaledQuestion {
  return {
    key: `lab/r\u0000${id}`,
    id,
    route: { replyTo: "lab/r", protocolVersion: 5, correlationData: Buffer.from(id).toString("base64") },
    request: { id, idGiven: true, prompt: `question ${id}`, stream: true, ...request },
    arrivedAt,
  };
}

describe("the MQTT request handler with a journal", () => {
  it("a question may be acknowledged only once the journal holds it; its final is journaled before it is published", async () => {
    const journal = new FakeJournal();
    const { handler, generations } = setup(journal);
    handler.useJournal(journal);
    let release!: () => void;
    journal.hold = new Promise((resolve) => (release = resolve));
    let acknowledged = false;
    const handled = ask(handler, { id: "q1", prompt: "hi" }).then(() => (acknowledged = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(acknowledged).toBe(false);
    expect(generations).toHaveLength(0);
    release();
    await handled;
    expect(acknowledged).toBe(true);
    await handler.settled();
    expect(journal.calls).toEqual(["accept q1", "accepted q1", "finish q1", "publish final q1"]);
    expect(journal.lookup("lab/r\u0000q1")).toMatchObject({ state: "done", final: { id: "q1", text: "an answer" } });
    expect(journal.lookup("lab/r\u0000q1")?.question).toMatchObject({ id: "q1", route: { replyTo: "lab/r", protocolVersion: 5 } });
  });

  it("after a restart: unfinished questions are answered in arrival order, from seq 0 with restarted: true; one too old gets IA_ERR_EXPIRED", async () => {
    const journal = new FakeJournal();
    for (const q of [question("old", NOW - 2 * 3600_000), question("r1", NOW - 60_000), question("r2", NOW - 30_000)])
      journal.entries.set(q.key, { question: q, state: q.id === "r1" ? "answering" : "accepted" });
    const { handler, generations, published } = setup(journal);
    handler.useJournal(journal);
    await handler.settled();
    expect(generations.map((g) => g.messages?.at(-1)?.content)).toEqual(["question r1", "question r2"]);
    const chunks = published.filter((p) => p.kind === "chunk").map(json);
    expect(chunks).toEqual([
      { id: "r1", seq: 0, delta: "an ", restarted: true },
      { id: "r1", seq: 1, delta: "answer", restarted: true },
      { id: "r2", seq: 0, delta: "an ", restarted: true },
      { id: "r2", seq: 1, delta: "answer", restarted: true },
    ]);
    const finals = published.filter((p) => p.kind === "final");
    expect(finals.map((f) => f.correlationData?.toString())).toEqual(["old", "r1", "r2"]);
    const expired = json(finals[0]!) as { error: { code: string; message: string } };
    expect(expired.error.code).toBe("IA_ERR_EXPIRED");
    expect(expired.error.message).toContain("arrived 2 h ago");
    expect(expired.error.message).toContain("limit of 60 min (--mqtt-max-age)");
    expect(journal.unfinished()).toEqual([]);
    expect(journal.lookup("lab/r\u0000old")?.final).toMatchObject({ error: { code: "IA_ERR_EXPIRED" } });
  });

  it("the same id after a restart gets the journaled final again, not a second generation", async () => {
    const journal = new FakeJournal();
    const q = question("q7", NOW - 1000);
    journal.entries.set(q.key, { question: q, state: "done", final: { id: "q7", done: true, agent: "a1", text: "first" } });
    const { handler, generations, published } = setup(journal);
    handler.useJournal(journal);
    await ask(handler, { id: "q7", prompt: "question q7" });
    await ask(handler, { id: "q7", prompt: "question q7" }, true);
    await handler.settled();
    expect(generations).toHaveLength(0);
    expect(published.map(json)).toEqual([
      { id: "q7", done: true, agent: "a1", text: "first" },
      { id: "q7", done: true, agent: "a1", text: "first" },
    ]);
    expect(published[0]?.correlationData?.toString()).toBe("q7");
  });

  it("a session goes on from the history the journal kept, and each turn is saved", async () => {
    const journal = new FakeJournal();
    journal.sessions.set("s1", [
      { role: "user", content: "earlier question" },
      { role: "assistant", content: "earlier answer" },
    ]);
    const { handler, generations } = setup(journal);
    handler.useJournal(journal);
    await ask(handler, { id: "t2", prompt: "next question", session: "s1" });
    await handler.settled();
    expect(generations[0]?.messages).toEqual([
      { role: "user", content: "earlier question" },
      { role: "assistant", content: "earlier answer" },
      { role: "user", content: "next question" },
    ]);
    expect(journal.sessions.get("s1")).toHaveLength(4);
    expect(journal.sessions.get("s1")?.at(-1)).toEqual({ role: "assistant", content: "an answer" });
  });

  it("an id-less question asked again (not a redelivery) is a new question with a key of its own", async () => {
    const journal = new FakeJournal();
    const { handler, generations } = setup(journal);
    handler.useJournal(journal);
    await ask(handler, { prompt: "same words" });
    await handler.settled();
    await ask(handler, { prompt: "same words" });
    await handler.settled();
    expect(generations).toHaveLength(2);
    expect(new Set([...journal.entries.keys()]).size).toBe(2);
  });

  it("says how old a question is in s, min or h", () => {
    expect([describeAge(45_000), describeAge(12 * 60_000), describeAge(3.5 * 3600_000)]).toEqual(["45 s", "12 min", "3.5 h"]);
  });
});
