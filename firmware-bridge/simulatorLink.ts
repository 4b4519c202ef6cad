import { LineReader, LinkClosedError } from "./instrumentLink.js";
import type { InstrumentLink } from "./instrumentLink.js";
import type { SpectrumAnalyzerSimulator } from "./simulator.js";

/** `--instrument sim`: the simulator in this process, behind the same link contract. */
export class SimulatorLink implements InstrumentLink {
  readonly description = "sim";
  readonly simulator: SpectrumAnalyzerSimulator;
  readonly #reader = new LineReader();
  #open = false;

  constructor(simulator: SpectrumAnalyzerSimulator) {
    this.simulator = simulator;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  async open(): Promise<void> {
    this.#reader.reset();
    this.#open = true;
  }

  async sendLine(line: string): Promise<void> {
    if (!this.#open) throw new LinkClosedError("sim: not open");
    const reply = this.simulator.receive(line);
    if (reply !== undefined) this.#reader.push(`${reply}\n`);
  }

  readLine(timeoutMs: number): Promise<string> {
    return this.#reader.read(timeoutMs);
  }

  discardInput(): void {
    this.#reader.discard();
  }

  async close(): Promise<void> {
    this.#open = false;
    this.#reader.fail(new LinkClosedError("sim: closed"));
  }
}
