import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/bundle.js";

// The size limits of docs/ARCHITECTURE.md: a folder a reader can take in at a glance, a file
// that fits one sitting. A file that grows past them is a sign it holds two concerns.
const MAX_SOURCE_FILES_PER_FOLDER = 12;
const MAX_LINES_PER_FILE = 400;

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(relative);
    return /\.(ts|mjs)$/.test(entry.name) ? [relative] : [];
  });
}

describe("the layout", () => {
  it(`has no folder in agent/ with more than ${MAX_SOURCE_FILES_PER_FOLDER} source files`, () => {
    const perFolder = new Map<string, number>();
    for (const file of sourceFiles("agent")) perFolder.set(path.dirname(file), (perFolder.get(path.dirname(file)) ?? 0) + 1);
    const crowded = [...perFolder].filter(([, count]) => count > MAX_SOURCE_FILES_PER_FOLDER);
    expect(crowded).toEqual([]);
    expect(perFolder.size).toBeGreaterThan(5);
  });

  it(`has no source or test file over ${MAX_LINES_PER_FILE} lines`, () => {
    const files = ["agent", "common", "models", "firmware-bridge", "deploy", "test"].flatMap(sourceFiles);
    const long = files
      .map((file) => [file, readFileSync(path.join(ROOT, file), "utf8").split("\n").length - 1] as const)
      .filter(([, lines]) => lines > MAX_LINES_PER_FILE);
    expect(long).toEqual([]);
    expect(files.length).toBeGreaterThan(100);
  });
});
