import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../agent/config/config.js";
import { loadAgent } from "../../agent/service/loadAgent.js";
import type { LoadedAgent } from "../../agent/service/loadAgent.js";
import { mcpHttpHandler } from "../../agent/transports/mcp/mcpHttp.js";
import { createLogger } from "../../common/logger.js";
import { SIM_IDN } from "../../firmware-bridge/simulator.js";
import { startSimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import type { SimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import { tempDir } from "../helpers/models.js";
import { scriptedModel } from "../helpers/thirdParty.js";

// MCP over streamable HTTP with the SDK's own StreamableHTTPClientTransport. The handler is
// mounted on a bare node:http server here, with a real agent loaded in this process (llama.cpp
// inline, a scripted model) and the simulator on a TCP socket, whose record of received lines
// is the evidence. The route reads the JSON body and hands it over, as an HTTP server that
// enforces a body limit does.

const REPLY = "The analyzer is centered at 1 GHz.";
const dir = tempDir("iagent-mcp-http-");
let instrument: SimulatorServer;
let agent: LoadedAgent;
let server: http.Server;
let url: URL;

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

beforeAll(async () => {
  instrument = await startSimulatorServer({ port: 0 });
  const model = await scriptedModel(path.join(dir, "reply.gguf"), REPLY);
  const flags = { model, mlock: "off", threads: "1", engine: "inline", instrument: `tcp://127.0.0.1:${instrument.port}` };
  const logger = createLogger({ level: "error" });
  agent = await loadAgent(loadConfig({ flags }).config, logger);
  const handler = mcpHttpHandler(agent, logger);
  server = http.createServer((req, res) => {
    if (req.url !== "/mcp") {
      res.writeHead(404).end();
      return;
    }
    const body = req.method === "POST" ? readJson(req) : Promise.resolve(undefined);
    void body.then((parsed) => handler(req, res, parsed));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`);
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  agent?.service.queue.close();
  await agent?.instrument?.close();
  await agent?.runtime.dispose();
  await instrument?.close();
});

type ToolResult = { isError?: boolean; content: { type: string; text?: string }[] };

describe("MCP over streamable HTTP (stateless)", () => {
  let client: Client;

  beforeAll(async () => {
    client = new Client({ name: "instrument-agent-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(url));
  });

  afterAll(async () => {
    await client?.close();
  });

  const call = async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args })) as ToolResult;

  it("lists the four tools", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(["ask", "instrument_settings", "read_trace", "scpi_query"]);
  });

  it("ask gets exactly the scripted answer, instrument_settings the simulator's IDN and center", async () => {
    expect((await call("ask", { question: "Where is it centered?" })).content).toEqual([{ type: "text", text: REPLY }]);
    const settings = await call("instrument_settings");
    expect(settings.isError).toBeFalsy();
    const [maker, modelName] = SIM_IDN.split(",");
    expect(settings.content[0]?.text).toContain(`${maker} ${modelName}`);
    expect(settings.content[0]?.text).toContain(`center ${instrument.simulator.settings.center / 1e9} GHz`);
  });

  it("scpi_query :FREQ:CENT 2e9 is a tool error and never reaches the simulator; *IDN? does", async () => {
    const from = instrument.simulator.received.length;
    const refused = await call("scpi_query", { query: ":FREQ:CENT 2e9" });
    expect(refused.isError).toBe(true);
    expect(refused.content[0]?.text).toMatch(/^error IA_ERR_SCPI_REFUSED: /);
    const idn = await call("scpi_query", { query: "*IDN?" });
    expect(idn.content[0]?.text).toBe(SIM_IDN);
    expect(instrument.simulator.received.slice(from)).toEqual(["*IDN?"]);
  });

  it("reads the settings resource", async () => {
    const { contents } = await client.readResource({ uri: "instrument://settings" });
    expect((contents[0] as { text: string }).text).toContain(`center ${instrument.simulator.settings.center / 1e9} GHz`);
  });

  it("answers GET and DELETE with 405 (no sessions, no server-to-client stream)", async () => {
    for (const method of ["GET", "DELETE"]) {
      const response = await fetch(url, { method, headers: { accept: "text/event-stream" } });
      expect(response.status, method).toBe(405);
      expect(response.headers.get("allow")).toBe("POST");
    }
  });
});
