import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RequestJournal } from "../../agent/service/journal/requestJournal.js";
import type { JournaledQuestion } from "../../agent/service/journal/requestJournal.js";

// Compaction: the file rewritten to its live records, with nothing lost, however the appends interleave.

function question(key: string, arrivedAt = 1_000): JournaledQuestion {
  return {
    key,
    id: `id-${key}`,
    route: { replyTo: `reply/${key}`, correlationData: "AAE=", protocolVersion: 5 },
    request: { prompt: `q ${key}` },
    arrivedAt,
  };
}

let dir: string;
let file: string;
const opened: RequestJournal[] = [];

async function openJournal(now = 10_000) {
  const lines: { level: number }[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const journal = await RequestJournal.open({ dir, logger, now: () => now });
  opened.push(journal);
  return { journal, complaints: () => lines.filter((line) => line.level >= 40) };
}

/** Everything a reader can ask the journal about these keys and sessions. */
function picture(journal: RequestJournal, keys: string[], sessions: string[]) {
  return {
    entries: keys.map((key) => journal.lookup(key)),
    unfinished: journal.unfinished().map((entry) => entry.question.key),
    sessions: sessions.map((session) => journal.session(session)),
  };
}

const lineCount = async () => (await readFile(file, "utf8")).split("\n").length - 1;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "journal-compaction-"));
  file = path.join(dir, "requests.jsonl");
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((journal) => journal.close()));
  await rm(dir, { recursive: true, force: true });
});

describe("RequestJournal compaction", () => {
  it("keeps every live record and shrinks the file", async () => {
    const { journal } = await openJournal();
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    for (const [i, key] of keys.entries()) await journal.accept(question(key, 1_000 + i));
    for (const key of keys.slice(0, 20)) await journal.finish(key, { text: `answer ${key}`, finishReason: "stop" });
    for (const key of keys.slice(20, 24)) await journal.expire(key);
    for (const key of keys.slice(24, 30)) journal.markAnswering(key);
    for (let turn = 0; turn < 30; turn++) await journal.saveSession(`s${turn % 3}`, [{ role: "user", content: `turn ${turn}` }]);
    const before = picture(journal, keys, ["s0", "s1", "s2"]);
    const bytesBefore = (await stat(file)).size;

    await journal.compact();

    expect(journal.stats.compactions).toBe(1);
    // 40 accepted, 20 finals, 4 expired, 6 answering, 3 sessions.
    expect(await lineCount()).toBe(73);
    expect(journal.stats.fileRecords).toBe(73);
    const bytesAfter = (await stat(file)).size;
    expect(bytesAfter).toBeLessThan(bytesBefore);
    expect(journal.stats.bytes).toBe(bytesAfter);
    expect(picture(journal, keys, ["s0", "s1", "s2"])).toEqual(before);
    await journal.close();

    const { journal: again, complaints } = await openJournal();
    expect(picture(again, keys, ["s0", "s1", "s2"])).toEqual(before);
    expect(complaints()).toEqual([]);
  });

  it("compacts by itself once the file holds more than about twice the live records", async () => {
    const { journal } = await openJournal();
    await journal.accept(question("a"));
    for (let turn = 0; turn < 200; turn++) await journal.saveSession("s", [{ role: "user", content: `turn ${turn}` }]);
    expect(journal.stats.compactions).toBeGreaterThanOrEqual(1);
    expect(await lineCount()).toBeLessThan(100);
    expect(journal.stats.records).toBe(201);
    await journal.close();

    const { journal: again } = await openJournal();
    expect(again.session("s")).toEqual([{ role: "user", content: "turn 199" }]);
    expect(again.lookup("a")?.state).toBe("accepted");
  });

  it("loses no append made while it runs: those queued before it are in the new file, those after it follow the rename", async () => {
    const { journal } = await openJournal();
    for (let i = 0; i < 100; i++) await journal.saveSession("busy", [{ role: "user", content: `turn ${i} `.repeat(20) }]);
    await journal.compact();
    for (let i = 0; i < 60; i++) await journal.saveSession("busy", [{ role: "user", content: `again ${i}` }]);
    const compactionsBefore = journal.stats.compactions;

    const queuedBefore = journal.accept(question("queued-before", 1));
    const compaction = journal.compact();
    let running = true;
    void compaction.finally(() => (running = false));
    const during: Promise<unknown>[] = [];
    const duringKeys: string[] = [];
    // One accept, finish or session save per turn of the event loop until the compaction is done.
    for (let i = 0; running; i++) {
      duringKeys.push(`during-${i}`);
      during.push(journal.accept(question(`during-${i}`, 10 + i)));
      if (i > 0) during.push(journal.finish(`during-${i - 1}`, { text: `answer ${i - 1}` }));
      during.push(journal.saveSession(`s${i % 8}`, [{ role: "user", content: `${i}` }]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all([queuedBefore, compaction, ...during]);
    expect(journal.stats.compactions).toBe(compactionsBefore + 1);
    // The compaction spans several turns of the event loop (a write, two syncs, a rename), so appends did land in the middle of it.
    expect(duringKeys.length).toBeGreaterThan(1);

    // Durable: a second journal reads the file the first is still appending to.
    const { journal: reader, complaints } = await openJournal();
    expect(reader.lookup("queued-before")?.state).toBe("accepted");
    expect(reader.unfinished().map((entry) => entry.question.key)).toEqual(["queued-before", duringKeys.at(-1)]);
    for (const [i, key] of duringKeys.slice(0, -1).entries()) expect(reader.lookup(key)?.final).toEqual({ text: `answer ${i}` });
    const last = duringKeys.length - 1;
    expect(reader.session(`s${last % 8}`)).toEqual([{ role: "user", content: `${last}` }]);
    expect(reader.session("busy")).toEqual([{ role: "user", content: "again 59" }]);
    expect(complaints()).toEqual([]);
    await expect(stat(`${file}.tmp`)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("compacts on open a file whose questions have all aged out since (a restart a day later)", async () => {
    const { journal } = await openJournal();
    for (let i = 0; i < 40; i++) await journal.accept(question(`k${i}`, 1_000 + i));
    for (let i = 0; i < 30; i++) await journal.finish(`k${i}`, { text: "x" });
    await journal.saveSession("s", [{ role: "user", content: "kept" }]);
    expect(journal.stats.compactions).toBe(0);
    await journal.close();
    expect(await lineCount()).toBe(71);

    const { journal: again } = await openJournal(1_000 + 25 * 60 * 60 * 1000);
    expect(again.stats.compactions).toBe(1);
    expect(again.unfinished()).toEqual([]);
    expect(again.session("s")).toEqual([{ role: "user", content: "kept" }]);
    expect(await lineCount()).toBe(1);
  });
});
