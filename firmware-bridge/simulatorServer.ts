import net from "node:net";
import type { SerialLink } from "../common/serial/serialLink.js";
import { LineReader } from "./instrumentLink.js";
import { SpectrumAnalyzerSimulator } from "./simulator.js";

export interface SimulatorServerOptions {
  /** TCP port; 0 picks a free one. Defaults to 5025. */
  port?: number;
  /** Defaults to `127.0.0.1`. */
  host?: string;
  /** Defaults to a fresh simulator. */
  simulator?: SpectrumAnalyzerSimulator;
}

export interface SimulatorServer {
  readonly simulator: SpectrumAnalyzerSimulator;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Splits a byte stream into lines, hands each to the simulator and writes its reply. */
function lineFeeder(onLine: (line: string) => void): (bytes: Buffer) => void {
  let pending = "";
  return (bytes) => {
    pending += bytes.toString("latin1");
    let newline = pending.indexOf("\n");
    while (newline >= 0) {
      onLine(pending.slice(0, newline).replace(/\r$/, ""));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
    // A peer that never sends a line end must not grow memory without bound.
    if (pending.length > 1 << 20) pending = "";
  };
}

/** The simulator on a raw SCPI socket, like an X-Series analyzer on port 5025. */
export async function startSimulatorServer(options: SimulatorServerOptions = {}): Promise<SimulatorServer> {
  const simulator = options.simulator ?? new SpectrumAnalyzerSimulator();
  const host = options.host ?? "127.0.0.1";
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.on(
      "data",
      lineFeeder((line) => {
        const reply = simulator.receive(line);
        if (reply !== undefined && !socket.destroyed) socket.write(`${reply}\n`, "latin1");
      }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 5025, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : (options.port ?? 5025);
  return {
    simulator,
    host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface SerialSimulatorOptions {
  /** Put a Prologix GPIB-USB adapter emulation in front of the simulator at this GPIB address. */
  prologixAddress?: number;
}

export interface SerialSimulator {
  readonly simulator: SpectrumAnalyzerSimulator;
  /** `++` commands the emulated Prologix adapter received, in order. */
  readonly adapterCommands: string[];
  close(): Promise<void>;
}

/** Removes Prologix ESC escapes: ESC c -> c. */
export function unescapePrologix(data: string): string {
  return data.replace(/\u001b([\s\S])/g, "$1");
}

/**
 * The simulator on a serial line (one end of a pty pair in tests and demos), optionally
 * behind an emulated Prologix adapter: `++` lines configure the adapter; other lines go to
 * the instrument when `++addr` matches; with `++auto 0` a reply is sent on `++read`.
 */
export async function serveSimulatorOnSerial(serial: SerialLink, options: SerialSimulatorOptions = {}): Promise<SerialSimulator> {
  const simulator = new SpectrumAnalyzerSimulator();
  const adapterCommands: string[] = [];
  const prologix = options.prologixAddress;
  const adapter = { addr: -1, auto: true, mode: 0 };
  const replies = new LineReader();
  // latin1: a binary trace block is one character per byte.
  const write = (text: string) => void serial.write(Buffer.from(text, "latin1")).catch(() => undefined);
  const onLine = (raw: string) => {
    if (prologix === undefined) {
      const reply = simulator.receive(raw);
      if (reply !== undefined) write(`${reply}\n`);
      return;
    }
    if (raw.startsWith("++")) {
      adapterCommands.push(raw);
      const [command = "", arg = ""] = raw.slice(2).trim().split(/\s+/);
      if (command === "addr") adapter.addr = Number(arg);
      else if (command === "auto") adapter.auto = arg === "1";
      else if (command === "mode") adapter.mode = Number(arg);
      else if (command === "read")
        void replies.read(0).then(
          (line) => write(`${line}\n`),
          () => undefined,
        );
      return;
    }
    if (adapter.addr !== prologix || adapter.mode !== 1) return;
    const reply = simulator.receive(unescapePrologix(raw));
    if (reply === undefined) return;
    if (adapter.auto) write(`${reply}\n`);
    else replies.push(`${reply}\n`);
  };
  await serial.open({ onData: lineFeeder(onLine) });
  return { simulator, adapterCommands, close: () => serial.close() };
}
