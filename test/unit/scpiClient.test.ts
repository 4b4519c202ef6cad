import { afterEach, describe, expect, it } from "vitest";
import { InstrumentBridge } from "../../firmware-bridge/instrumentBridge.js";
import { InstrumentContext, renderSnapshot } from "../../firmware-bridge/instrumentContext.js";
import { LineReader } from "../../firmware-bridge/instrumentLink.js";
import type { InstrumentLink } from "../../firmware-bridge/instrumentLink.js";
import { ScpiClient } from "../../firmware-bridge/scpiClient.js";
import { SpectrumAnalyzerSimulator } from "../../firmware-bridge/simulator.js";
import { SimulatorLink } from "../../firmware-bridge/simulatorLink.js";
import { startSimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import type { SimulatorServer } from "../../firmware-bridge/simulatorServer.js";

/** A simulator link that answers after a delay and counts queries in flight. */
class SlowLink implements InstrumentLink {
  readonly description = "slow";
  readonly #reader = new LineReader();
  readonly #sim = new SpectrumAnalyzerSimulator();
  inFlight = 0;
  maxInFlight = 0;
  isOpen = false;
  async open() {
    this.isOpen = true;
  }
  async sendLine(line: string) {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const reply = this.#sim.receive(line);
    setTimeout(() => {
      this.inFlight -= 1;
      if (reply !== undefined) this.#reader.push(`${reply}\n`);
    }, 5);
  }
  readLine(timeoutMs: number) {
    return this.#reader.read(timeoutMs);
  }
  discardInput() {
    this.#reader.discard();
  }
  async close() {
    this.isOpen = false;
  }
}

let server: SimulatorServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("the SCPI client", () => {
  it("keeps one query in flight per instrument and gives each caller its own reply", async () => {
    const link = new SlowLink();
    const client = new ScpiClient({ link, timeoutMs: 2000 });
    const replies = await Promise.all([client.query("*IDN?"), client.query(":FREQ:CENT?"), client.query(":SWE:POIN?")]);
    expect(replies).toEqual(["Keysight Technologies,N9020A,SIM00001,A.99.99", "+1.00000000000E+009", "1001"]);
    expect(link.maxInFlight).toBe(1);
  });

  it("after a query without reply, drains SYST:ERR? and reports the instrument's errors", async () => {
    const sim = new SpectrumAnalyzerSimulator();
    const client = new ScpiClient({ link: new SimulatorLink(sim), timeoutMs: 100 });
    const failure = await client.query(":NO:SUCH?").catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: "IA_ERR_SCPI_TIMEOUT" });
    expect((failure as Error).message).toContain('-113,"Undefined header"');
    expect(sim.received).toEqual([":NO:SUCH?", ":SYST:ERR?", ":SYST:ERR?"]);
    expect(await client.query("*IDN?")).toContain("N9020A");
  });

  it("reports an unreachable instrument and reconnects on the next query once it is back", async () => {
    server = await startSimulatorServer({ port: 0 });
    const port = server.port;
    const bridge = new InstrumentBridge({ uri: `tcp://127.0.0.1:${port}`, timeoutMs: 1000 });
    expect(await bridge.query("*IDN?", "cli")).toContain("N9020A");
    await server.close();
    server = undefined;
    await expect(bridge.query("*IDN?", "cli")).rejects.toMatchObject({ code: "IA_ERR_INSTRUMENT_UNREACHABLE" });
    server = await startSimulatorServer({ port });
    expect(await bridge.query(":SENSe:FREQuency:SPAN?", "cli")).toBe("+1.00000000000E+008");
    // The reconnect drained the error queue before the query.
    expect(server.simulator.received).toEqual([":SYST:ERR?", ":FREQ:SPAN?"]);
    await bridge.close();
  });

  it("refuses before sending: the simulator never sees a refused line", async () => {
    const bridge = new InstrumentBridge({ uri: "sim" });
    await expect(bridge.query("*IDN?;*RST", "cli")).rejects.toMatchObject({ code: "IA_ERR_SCPI_REFUSED", exitCode: 2 });
    expect(bridge.simulator?.received).toEqual([]);
    expect(await bridge.query("FREQ:CENT?;SPAN?", "cli")).toBe("+1.00000000000E+009;+1.00000000000E+008");
    expect(bridge.simulator?.received).toEqual([":FREQ:CENT?", ":FREQ:SPAN?"]);
  });
});

describe("the instrument context", () => {
  it("renders the live settings compactly and caches them", async () => {
    const bridge = new InstrumentBridge({ uri: "sim" });
    let clock = 0;
    const context = new InstrumentContext({
      query: (q) => bridge.query(q, "context"),
      description: "sim",
      cacheMs: 3000,
      now: () => clock,
    });
    const text = await context.render();
    expect(text).toContain("Keysight Technologies N9020A");
    for (const part of [
      "center 1 GHz",
      "span 100 MHz (950 MHz to 1.05 GHz)",
      "RBW 1 MHz",
      "VBW 1 MHz",
      "sweep time 1 ms",
      "1001 sweep points",
      "reference level 0 dBm",
      "marker 1 at 1 GHz reads -20 dBm",
    ]) {
      expect(text).toContain(part);
    }
    const reads = bridge.simulator?.received.length ?? 0;
    expect(reads).toBe(13);
    clock = 2000;
    expect(await context.render()).toBe(text);
    expect(bridge.simulator?.received.length).toBe(reads);
    clock = 3500;
    await context.render();
    expect(bridge.simulator?.received.length).toBe(2 * reads);
    expect(context.lastReadable).toBe(true);
  });

  it("says the instrument could not be read instead of throwing, and retries that less often", async () => {
    let clock = 0;
    let asked = 0;
    const query = () => {
      asked += 1;
      return Promise.reject(new Error("connection refused"));
    };
    const context = new InstrumentContext({
      query,
      description: "tcp://10.9.9.9:5025",
      cacheMs: 3000,
      failureCacheMs: 15_000,
      now: () => clock,
    });
    const text = await context.render();
    expect(text).toContain("could not be read (connection refused)");
    expect(context.lastReadable).toBe(false);
    clock = 5000;
    await context.render();
    expect(asked).toBe(1);
    clock = 16_000;
    await context.render();
    expect(asked).toBe(2);
    expect(renderSnapshot({ replies: { idn: "A,B,C,D", center: "+2.0E+009" }, error: "timeout" }, "x")).toContain("center 2 GHz");
  });
});
