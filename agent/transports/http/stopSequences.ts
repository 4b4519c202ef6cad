/**
 * OpenAI's `stop`: the answer ends before the first of these strings. Text that might be the
 * start of one is held back until it is clear, so a streamed answer never shows part of a stop
 * string; once one appears the caller aborts the generation.
 */
export class StopSequences {
  readonly #stops: readonly string[];
  #held = "";
  #stopped = false;
  #text = "";

  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s !== "");
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The answer as shown so far. */
  get text(): string {
    return this.#text;
  }

  /** Takes a delta; returns the text that may be shown now. */
  push(delta: string): string {
    if (this.#stopped) return "";
    const buffer = this.#held + delta;
    const cut = this.#firstStop(buffer);
    if (cut !== undefined) {
      this.#stopped = true;
      this.#held = "";
      return this.#emit(buffer.slice(0, cut));
    }
    const keep = this.#partialStopAtEnd(buffer);
    this.#held = buffer.slice(buffer.length - keep);
    return this.#emit(buffer.slice(0, buffer.length - keep));
  }

  /** The generation ended: what was held back is answer text after all. */
  flush(): string {
    const rest = this.#stopped ? "" : this.#held;
    this.#held = "";
    return this.#emit(rest);
  }

  #emit(text: string): string {
    this.#text += text;
    return text;
  }

  #firstStop(buffer: string): number | undefined {
    let first: number | undefined;
    for (const stop of this.#stops) {
      const at = buffer.indexOf(stop);
      if (at >= 0 && (first === undefined || at < first)) first = at;
    }
    return first;
  }

  /** The length of the longest end of `buffer` that begins some stop string. */
  #partialStopAtEnd(buffer: string): number {
    let longest = 0;
    for (const stop of this.#stops)
      for (let n = Math.min(stop.length - 1, buffer.length); n > longest; n--)
        if (buffer.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
    return longest;
  }
}
