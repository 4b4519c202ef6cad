import { createServer } from "node:net";
import type { Server } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import pino from "pino";
import { listenOutcome } from "../../agent/transports/http/listenOutcome.js";
import { HttpTransport } from "../../agent/transports/http/httpTransport.js";
import { StopSequences } from "../../agent/transports/http/stopSequences.js";
import { parseHttpAddress } from "../../agent/transports/http/httpFromConfig.js";
import { isLoopbackHost } from "../../agent/transports/http/auth.js";

const busy = (code: string) => Object.assign(new Error(`listen ${code}`), { code });

describe("listenOutcome: a busy default port warns, a chosen one is an error", () => {
  it("listening is listening", () => {
    expect(listenOutcome(undefined, { host: "127.0.0.1", port: 8080, isDefaultAddress: true })).toEqual({ kind: "listening" });
  });

  it("the default 127.0.0.1:8080 in use: serve without HTTP, saying how to choose", () => {
    const outcome = listenOutcome(busy("EADDRINUSE"), { host: "127.0.0.1", port: 8080, isDefaultAddress: true });
    expect(outcome).toEqual({
      kind: "off",
      message:
        "HTTP API: 127.0.0.1:8080 is in use (another agent or server?): serving without HTTP; set --http <host:port> to serve there, or --http off",
    });
  });

  it("an explicit address in use, or not on this host: IA_ERR_HTTP_LISTEN naming host:port", () => {
    const inUse = listenOutcome(busy("EADDRINUSE"), { host: "127.0.0.1", port: 9, isDefaultAddress: false });
    expect(inUse.kind === "error" && inUse.error.toJSON()).toEqual({
      code: "IA_ERR_HTTP_LISTEN",
      message: "HTTP API: cannot listen on 127.0.0.1:9: the address is in use; set --http <host:port>, or --http off",
    });
    const notHere = listenOutcome(busy("EADDRNOTAVAIL"), { host: "10.9.9.9", port: 8080, isDefaultAddress: true });
    expect(notHere.kind === "error" && notHere.error.message).toContain("cannot listen on 10.9.9.9:8080: the address is not on this host");
  });
});

describe("HttpTransport on a busy port (real sockets)", () => {
  const holders: Server[] = [];
  afterAll(() => holders.forEach((s) => s.close()));
  const holdPort = async () => {
    const server = createServer();
    holders.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as { port: number }).port;
  };

  it("as the default address: start resolves, warns, and the summary says it is off", async () => {
    const port = await holdPort();
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const http = new HttpTransport({ host: "127.0.0.1", port, isDefaultAddress: true, logger });
    await http.start();
    expect(http.summary).toBe(
      `http     off: HTTP API: 127.0.0.1:${port} is in use (another agent or server?): serving without HTTP; set --http <host:port> to serve there, or --http off`,
    );
    expect(lines.map((l) => JSON.parse(l) as { level: number; msg: string })).toContainEqual(
      expect.objectContaining({ level: 40, msg: expect.stringContaining(`127.0.0.1:${port} is in use`) }),
    );
    await http.stop({ ms: 1000 });
  });

  it("as an explicit address: start rejects with IA_ERR_HTTP_LISTEN", async () => {
    const port = await holdPort();
    const http = new HttpTransport({ host: "127.0.0.1", port, logger: pino({ level: "silent" }) });
    await expect(http.start()).rejects.toMatchObject({ code: "IA_ERR_HTTP_LISTEN", message: expect.stringContaining(`127.0.0.1:${port}`) });
  });
});

describe("StopSequences", () => {
  it("holds back a possible start of a stop string and cuts before the first one", () => {
    const stops = new StopSequences(["END", "\n\n"]);
    expect(["The R", "BW E", "N", "D is"].map((d) => stops.push(d))).toEqual(["The R", "BW ", "", ""]);
    expect(stops.stopped).toBe(true);
    expect(stops.text).toBe("The RBW ");
  });

  it("gives back what it held when the answer ends without a stop", () => {
    const stops = new StopSequences(["END"]);
    expect(stops.push("ok E")).toBe("ok ");
    expect(stops.flush()).toBe("E");
    expect(stops.text).toBe("ok E");
    expect(stops.stopped).toBe(false);
  });
});

describe("--http values", () => {
  it("reads host:port and [v6]:port, and names a bad value", () => {
    expect(parseHttpAddress("0.0.0.0:8080")).toEqual({ host: "0.0.0.0", port: 8080 });
    expect(parseHttpAddress("[::1]:9000")).toEqual({ host: "[::1]", port: 9000 });
    expect(() => parseHttpAddress("localhost:99999")).toThrow(
      '--http: expected host:port such as 127.0.0.1:8080, or off, got "localhost:99999"',
    );
  });

  it("loopback is 127/8, ::1 and localhost only", () => {
    expect(["127.0.0.1", "127.1.2.3", "[::1]", "localhost"].map(isLoopbackHost)).toEqual([true, true, true, true]);
    expect(["0.0.0.0", "192.168.1.5", "[::]"].map(isLoopbackHost)).toEqual([false, false, false]);
  });
});
