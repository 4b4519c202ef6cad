import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RequestJournal } from "../../agent/service/journal/requestJournal.js";
import type { JournaledQuestion, RequestJournalOptions } from "../../agent/service/journal/requestJournal.js";

function question(key: string, arrivedAt = 1_000, extra: Partial<JournaledQuestion> = {}): JournaledQuestion {
  return {
    key,
    id: `id-${key}`,
    route: { replyTo: `lab/agent/reply/${key}`, correlationData: Buffer.from(key).toString("base64"), protocolVersion: 5 },
    request: { prompt: `what is ${key}?`, maxTokens: 32 },
    arrivedAt,
    ...extra,
  };
}

/** A real pino logger whose lines land in `lines`, parsed. */
function capturingLogger() {
  const lines: { level: number; msg: string; [key: string]: unknown }[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines, warnings: () => lines.filter((line) => line.level === 40) };
}

let dir: string;
let now: number;
const opened: RequestJournal[] = [];

async function openJournal(options: Partial<RequestJournalOptions> = {}) {
  const log = capturingLogger();
  const journal = await RequestJournal.open({ dir, logger: log.logger, now: () => now, ...options });
  opened.push(journal);
  return { journal, ...log };
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "journal-"));
  now = 10_000;
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((journal) => journal.close()));
  await rm(dir, { recursive: true, force: true });
});

describe("RequestJournal", () => {
  it("keeps accepted and finished questions across close and reopen", async () => {
    const { journal } = await openJournal();
    await journal.accept(question("a", 1_000));
    await journal.accept(question("b", 2_000, { route: { replyTo: "r/b", protocolVersion: 4 }, request: { prompt: "b" } }));
    await journal.finish("a", { id: "id-a", text: "forty-two", finishReason: "stop" });
    await journal.close();

    const { journal: again, warnings } = await openJournal();
    expect(again.lookup("a")).toEqual({
      question: question("a", 1_000),
      state: "done",
      final: { id: "id-a", text: "forty-two", finishReason: "stop" },
    });
    expect(again.lookup("b")).toEqual({
      question: question("b", 2_000, { route: { replyTo: "r/b", protocolVersion: 4 }, request: { prompt: "b" } }),
      state: "accepted",
    });
    expect(again.lookup("c")).toBeUndefined();
    expect(warnings()).toEqual([]);
    const text = await readFile(path.join(dir, "requests.jsonl"), "utf8");
    expect(text.split("\n")[0]).toMatch(/^[0-9a-f]{8}\t\{"type":"accepted","key":"a",/);
  });

  it("lists the unfinished questions oldest arrival first, answering ones included, done and expired ones not", async () => {
    const { journal } = await openJournal();
    await journal.accept(question("late", 5_000));
    await journal.accept(question("early", 1_000));
    await journal.accept(question("middle", 3_000));
    await journal.accept(question("finished", 2_000));
    await journal.accept(question("stale", 500));
    journal.markAnswering("middle");
    await journal.finish("finished", { text: "done" });
    await journal.expire("stale");
    const expected = [
      ["early", "accepted"],
      ["middle", "answering"],
      ["late", "accepted"],
    ];
    expect(journal.unfinished().map((entry) => [entry.question.key, entry.state])).toEqual(expected);
    await journal.close();

    const { journal: again } = await openJournal();
    expect(again.unfinished().map((entry) => [entry.question.key, entry.state])).toEqual(expected);
    expect(again.lookup("stale")?.state).toBe("expired");
  });

  it("returns the existing entry for a key already journaled, and writes nothing for it", async () => {
    const { journal } = await openJournal();
    const first = await journal.accept(question("k", 1_000));
    await journal.finish("k", { text: "first answer" });
    const records = journal.stats.records;
    const again = await journal.accept(question("k", 9_000, { id: "another-id" }));
    expect(again).toEqual({ question: first.question, state: "done", final: { text: "first answer" } });
    expect(journal.stats.records).toBe(records);
    await journal.finish("k", { text: "second answer" });
    expect(journal.lookup("k")?.final).toEqual({ text: "first answer" });
  });

  it("a duplicate accepted while the first is being written resolves once that write is on the disk", async () => {
    const { journal } = await openJournal();
    const first = journal.accept(question("k"));
    const second = journal.accept(question("k", 2_000));
    const [a, b] = await Promise.all([first, second]);
    expect(b).toEqual(a);
    expect(journal.stats.records).toBe(1);
  });

  it("commits concurrent accepts together: 10 at once cost far fewer than 10 syncs, and all are durable", async () => {
    const { journal } = await openJournal();
    const before = journal.stats.syncs;
    const keys = Array.from({ length: 10 }, (_, i) => `q${i}`);
    await Promise.all(keys.map((key, i) => journal.accept(question(key, 1_000 + i))));
    const syncs = journal.stats.syncs - before;
    expect(syncs).toBeGreaterThanOrEqual(1);
    expect(syncs).toBeLessThanOrEqual(2);
    expect(journal.stats.records).toBe(10);
    // Durable means in the file when the promise resolved: read it back with a second journal, without closing the first.
    const { journal: reader } = await openJournal();
    expect(reader.unfinished().map((entry) => entry.question.key)).toEqual(keys);
  });

  it("accept, finish and saveSession each sync; markAnswering does not", async () => {
    const { journal } = await openJournal();
    await journal.accept(question("a"));
    await journal.finish("a", { text: "x" });
    await journal.saveSession("s", [{ role: "user", content: "hi" }]);
    expect(journal.stats.syncs).toBe(3);
    await journal.accept(question("b"));
    const syncs = journal.stats.syncs;
    journal.markAnswering("b");
    await journal.close();
    expect(journal.stats.syncs).toBe(syncs);
    expect(journal.stats.records).toBe(5);
  });

  it("keeps at most maxEntries questions, dropping finished ones before unfinished ones", async () => {
    const { journal } = await openJournal({ maxEntries: 3 });
    await journal.accept(question("old-open", 1_000));
    await journal.accept(question("old-done", 1_100));
    await journal.finish("old-done", { text: "x" });
    await journal.accept(question("c", 1_200));
    await journal.accept(question("d", 1_300));
    expect(journal.lookup("old-done")).toBeUndefined();
    expect(journal.lookup("old-open")?.state).toBe("accepted");
    await journal.accept(question("e", 1_400));
    expect(journal.lookup("old-open")).toBeUndefined();
    expect(journal.unfinished().map((entry) => entry.question.key)).toEqual(["c", "d", "e"]);
    await journal.close();

    const { journal: again } = await openJournal({ maxEntries: 3 });
    expect(again.unfinished().map((entry) => entry.question.key)).toEqual(["c", "d", "e"]);
    expect(again.lookup("old-open")).toBeUndefined();
    expect(again.lookup("old-done")).toBeUndefined();
  });

  it("drops questions older than maxAgeMs, while running and on reopen", async () => {
    const { journal } = await openJournal({ maxAgeMs: 5_000 });
    await journal.accept(question("a", 9_000));
    await journal.accept(question("b", 12_000));
    await journal.finish("b", { text: "b" });
    now = 14_500;
    await journal.accept(question("c", 14_000));
    expect(journal.lookup("a")).toBeUndefined();
    expect(journal.lookup("b")?.state).toBe("done");
    await journal.close();

    now = 17_500;
    const { journal: again } = await openJournal({ maxAgeMs: 5_000 });
    expect(again.lookup("b")).toBeUndefined();
    expect(again.lookup("c")?.state).toBe("accepted");
    expect(again.unfinished().map((entry) => entry.question.key)).toEqual(["c"]);
  });

  it("keeps sessions across a reopen, the most recently saved maxSessions of them", async () => {
    const { journal } = await openJournal({ maxSessions: 2 });
    await journal.saveSession("s1", [{ role: "user", content: "one" }]);
    await journal.saveSession("s2", [{ role: "user", content: "two" }]);
    const history = [
      { role: "user", content: "one" },
      { role: "assistant", content: "1" },
      { role: "user", content: "again" },
    ];
    await journal.saveSession("s1", history);
    await journal.saveSession("s3", [{ role: "user", content: "three" }]);
    expect(journal.session("s2")).toBeUndefined();
    expect(journal.session("s1")).toEqual(history);
    await journal.close();

    const { journal: again } = await openJournal({ maxSessions: 2 });
    expect(again.session("s1")).toEqual(history);
    expect(again.session("s3")).toEqual([{ role: "user", content: "three" }]);
    expect(again.session("s2")).toBeUndefined();
  });

  it("hands out copies: changing a returned entry or history changes nothing inside", async () => {
    const { journal } = await openJournal();
    const entry = await journal.accept(question("a"));
    entry.state = "done";
    entry.question.route.replyTo = "elsewhere";
    const messages = [{ role: "user", content: "hi" }];
    await journal.saveSession("s", messages);
    messages[0]!.content = "changed";
    journal.session("s")![0]!.content = "changed too";
    expect(journal.lookup("a")?.state).toBe("accepted");
    expect(journal.lookup("a")?.question.route.replyTo).toBe("lab/agent/reply/a");
    expect(journal.session("s")).toEqual([{ role: "user", content: "hi" }]);
  });

  it("close flushes what is queued and is idempotent; the journal refuses work after it", async () => {
    const { journal } = await openJournal();
    void journal.accept(question("a")).catch(() => undefined);
    journal.markAnswering("a");
    const closing = journal.close();
    expect(journal.close()).toBe(closing);
    await closing;
    await journal.close();
    await expect(journal.accept(question("b"))).rejects.toThrow(/closed/);
    await expect(journal.finish("a", {})).rejects.toThrow(/closed/);
    journal.markAnswering("a");

    const { journal: again } = await openJournal();
    expect(again.lookup("a")?.state).toBe("answering");
  });
});
