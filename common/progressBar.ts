/**
 * A tiny progress renderer for long work (downloads, synth, hashing). On a TTY it redraws one
 * line in place at most ~10 times a second; elsewhere (logs, CI, a serial console captured to
 * a file) it prints a plain line at each 10% step, so the output stays short and greppable.
 */

/** Where the bar is drawn: `process.stderr` or anything with `write` (tests pass a fake). */
export interface ProgressStream {
  write(chunk: string): unknown;
  /** A TTY gets the redrawn line; anything else gets a line per 10% step. */
  isTTY?: boolean;
}

export interface ProgressBarOptions {
  /** Text before the numbers, e.g. "downloading qwen2.5-0.5b-q4_k_m". */
  label: string;
  /** Total bytes when known; `update` may supply or change it later. Defaults to unknown. */
  totalBytes?: number;
  /** Defaults to `process.stderr`. */
  stream?: ProgressStream;
  /** Clock in milliseconds, for tests. Defaults to `Date.now`. */
  now?: () => number;
}

export interface ProgressBar {
  update(doneBytes: number, totalBytes?: number): void;
  /** Ends the bar: the final line, or `message` in its place. Later calls do nothing. */
  done(message?: string): void;
}

const REDRAW_INTERVAL_MS = 100;
const SPEED_WINDOW_MS = 5_000;
const BAR_WIDTH = 20;

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

function percentOf(done: number, total: number): number {
  return Math.min(100, Math.floor((done / total) * 100));
}

export function createProgressBar(options: ProgressBarOptions): ProgressBar {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? Date.now;
  const tty = stream.isTTY === true;
  const startedAt = now();
  let total = options.totalBytes;
  let done = 0;
  let lastDrawAt = Number.NEGATIVE_INFINITY;
  let lastStepPrinted = 0;
  let finished = false;
  // Recent (time, bytes) samples: the speed shown is over the last few seconds, not since start.
  const samples: Array<[number, number]> = [];

  function write(text: string): void {
    try {
      stream.write(text);
    } catch {
      // A progress line must never break the work it reports on.
    }
  }

  function speed(at: number): number {
    const first = samples[0];
    if (!first || at - first[0] <= 0) return 0;
    return (done - first[1]) / ((at - first[0]) / 1000);
  }

  function line(at: number): string {
    const speedText = `${megabytes(speed(at))} MB/s`;
    if (total === undefined || total <= 0) return `${options.label}  ${megabytes(done)} MB  ${speedText}`;
    const percent = percentOf(done, total);
    const filled = Math.round((percent / 100) * BAR_WIDTH);
    const bar = `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}]`;
    return `${options.label} ${bar} ${String(percent).padStart(3)}%  ${megabytes(done)}/${megabytes(total)} MB  ${speedText}`;
  }

  function recordSample(at: number): void {
    const last = samples[samples.length - 1];
    if (last && at - last[0] < REDRAW_INTERVAL_MS) return;
    samples.push([at, done]);
    while (samples.length > 2 && at - (samples[1]?.[0] ?? at) >= SPEED_WINDOW_MS) samples.shift();
  }

  return {
    update(doneBytes, totalBytes) {
      if (finished) return;
      if (totalBytes !== undefined) total = totalBytes;
      done = doneBytes;
      const at = now();
      recordSample(at);
      if (tty) {
        const complete = total !== undefined && total > 0 && done >= total;
        if (!complete && at - lastDrawAt < REDRAW_INTERVAL_MS) return;
        lastDrawAt = at;
        write(`\r${line(at)}\x1b[K`);
        return;
      }
      if (total === undefined || total <= 0) return;
      const step = Math.floor(percentOf(done, total) / 10) * 10;
      if (step > lastStepPrinted) {
        lastStepPrinted = step;
        write(`${options.label}: ${step}%  ${megabytes(done)}/${megabytes(total)} MB\n`);
      }
    },

    done(message) {
      if (finished) return;
      finished = true;
      const seconds = (now() - startedAt) / 1000;
      const summary = message ?? `${options.label}: done, ${megabytes(done)} MB in ${seconds.toFixed(1)} s`;
      write(tty ? `\r${summary}\x1b[K\n` : `${summary}\n`);
    },
  };
}
