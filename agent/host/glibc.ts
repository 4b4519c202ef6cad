/**
 * The glibc this process runs on, and whether node-llama-cpp's prebuilt binaries can load on it:
 * read once here for the probe, the resource policy's warning and the engine preflight's refusal.
 */

/** The prebuilt llama.cpp binaries of node-llama-cpp 3.21 link against this glibc. */
export const MIN_GLIBC: readonly [number, number] = [2, 34];

/** The running process's glibc (e.g. "2.31") from Node's diagnostic report; null on Windows, musl or when the report lacks it. */
export function glibcVersionOfThisProcess(): string | null {
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: unknown } } | undefined;
    const version = report?.header?.glibcVersionRuntime;
    return typeof version === "string" ? version : null;
  } catch {
    return null;
  }
}

/** Whether a glibc version such as "2.31" is older than MIN_GLIBC, so the prebuilt binaries will not load. */
export function olderThanMinGlibc(version: string): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major < MIN_GLIBC[0] || (major === MIN_GLIBC[0] && minor < MIN_GLIBC[1]);
}
