/** Polls `check` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean,
  options: { what?: string; timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const { what = "the condition", timeoutMs = 5000, intervalMs = 20 } = options;
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
