import { appendFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { crc32 } from "node:zlib";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RequestJournal } from "../../agent/service/journal/requestJournal.js";
import type { JournaledQuestion } from "../../agent/service/journal/requestJournal.js";

// Recovery after a crash: the file as a power cut or a bad sector leaves it, and what the journal makes of it.

function question(key: string, arrivedAt = 1_000): JournaledQuestion {
  return { key, id: `id-${key}`, route: { replyTo: `reply/${key}`, protocolVersion: 5 }, request: { prompt: `q ${key}` }, arrivedAt };
}

let dir: string;
let file: string;
const opened: RequestJournal[] = [];

async function openJournal() {
  const lines: { level: number; msg: string; file?: string; offset?: number }[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const journal = await RequestJournal.open({ dir, logger, now: () => 10_000 });
  opened.push(journal);
  return { journal, warnings: () => lines.filter((line) => line.level === 40), errors: () => lines.filter((line) => line.level >= 50) };
}

/** A journal with questions a, b, c, closed; returns where each line starts. */
async function writeThree(): Promise<number[]> {
  const { journal } = await openJournal();
  for (const [i, key] of ["a", "b", "c"].entries()) await journal.accept(question(key, 1_000 + i));
  await journal.close();
  const text = await readFile(file, "utf8");
  const starts = [0];
  for (let i = text.indexOf("\n"); i !== -1 && i < text.length - 1; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return starts;
}

const keys = (journal: RequestJournal) => journal.unfinished().map((entry) => entry.question.key);

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "journal-recovery-"));
  file = path.join(dir, "requests.jsonl");
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((journal) => journal.close()));
  await rm(dir, { recursive: true, force: true });
});

describe("RequestJournal recovery", () => {
  it("drops a last record cut off mid-write with one warning naming the file and offset, and truncates to the last good line", async () => {
    const starts = await writeThree();
    const size = (await stat(file)).size;
    await truncate(file, size - 7);

    const { journal, warnings, errors } = await openJournal();
    expect(keys(journal)).toEqual(["a", "b"]);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ file, offset: starts[2] });
    expect(warnings()[0]!.msg).toContain(file);
    expect(warnings()[0]!.msg).toContain(`byte ${starts[2]}`);
    expect(errors()).toEqual([]);
    expect((await stat(file)).size).toBe(starts[2]);
    expect(journal.stats.bytes).toBe(starts[2]);

    // The journal goes on from the good line; the next open finds nothing to complain about.
    await journal.accept(question("d", 2_000));
    await journal.close();
    const { journal: again, warnings: warningsAgain } = await openJournal();
    expect(keys(again)).toEqual(["a", "b", "d"]);
    expect(warningsAgain()).toEqual([]);
  });

  it("drops a complete last line whose checksum does not match, with one warning", async () => {
    const starts = await writeThree();
    const data = await readFile(file);
    data[starts[2]! + 30]! ^= 0x01;
    await writeFile(file, data);

    const { journal, warnings } = await openJournal();
    expect(keys(journal)).toEqual(["a", "b"]);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ file, offset: starts[2] });
    expect((await stat(file)).size).toBe(starts[2]);
  });

  it("treats a torn batch (several bad lines, then zeros, at the end) as one torn tail: one warning", async () => {
    const starts = await writeThree();
    await appendFile(file, 'deadbeef\t{"type":"accepted"\nnot a record at all\n');
    await appendFile(file, Buffer.alloc(512));

    const { journal, warnings } = await openJournal();
    expect(keys(journal)).toEqual(["a", "b", "c"]);
    expect(warnings()).toHaveLength(1);
    const end = (await readFile(file, "utf8")).length;
    expect(warnings()[0]).toMatchObject({ file, offset: end });
    expect(end).toBeGreaterThan(starts[2]!);
  });

  it("skips a damaged line in the middle with one warning, keeps the lines after it, and leaves the file as it is", async () => {
    const starts = await writeThree();
    const data = await readFile(file);
    data[starts[1]! + 40] = "#".charCodeAt(0);
    await writeFile(file, data);

    const { journal, warnings, errors } = await openJournal();
    expect(keys(journal)).toEqual(["a", "c"]);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ file, offset: starts[1] });
    expect(errors()).toEqual([]);
    expect((await stat(file)).size).toBe(data.length);
  });

  it("skips an intact record of a kind it does not know, with a warning, and never truncates it away", async () => {
    await writeThree();
    const json = JSON.stringify({ type: "from-a-newer-agent", key: "z" });
    await appendFile(file, `${crc32(json).toString(16).padStart(8, "0")}\t${json}\n`);
    const size = (await stat(file)).size;

    const { journal, warnings } = await openJournal();
    expect(keys(journal)).toEqual(["a", "b", "c"]);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]!.msg).toMatch(/does not know/);
    expect((await stat(file)).size).toBe(size);
  });

  it("removes the .tmp a compaction left when it crashed before its rename, and reads the journal as it was", async () => {
    await writeThree();
    await writeFile(`${file}.tmp`, "half a compaction");

    const { journal, warnings } = await openJournal();
    expect(keys(journal)).toEqual(["a", "b", "c"]);
    expect(warnings()).toEqual([]);
    await expect(stat(`${file}.tmp`)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("starts empty when the folder and file do not exist yet, and creates both", async () => {
    const { journal, warnings } = await openJournal();
    expect(journal.unfinished()).toEqual([]);
    expect(warnings()).toEqual([]);
    expect((await stat(file)).isFile()).toBe(true);
  });
});
