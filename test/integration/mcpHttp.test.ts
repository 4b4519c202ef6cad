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
import { modelArgs, tempDir } from "../helpers/models.js";
import { freePort } from "../helpers/mosquitto.js";
import { spawnAgent } from "../helpers/mqttAgent.js";
import { scriptedModel } from "../helpers/thirdParty.js";

// MCP over streamable HTTP with the SDK's own StreamableHTTPClientTransport, the simulator on a
// TCP socket, whose record of received lines is the evidence. Twice: against the real bundle's
// `run --http` (its /mcp behind the API key), and against the handler mounted on a bare
// node:http server with a real agent loaded in this process (llama.cpp inline), the route
// reading the JSON body and handing it over as an HTTP server with a body limit does.

const REPLY = "The analyzer is centered at 1 GHz.";
const KEY = "mcp-test-key";
const dir = tempDir("iagent-mcp-http-");
let instrument: SimulatorServer;
let model: string;

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

beforeAll(async () => {
  instrument = await startSimulatorServer({ port: 0 });
  model = await scriptedModel(path.join(dir, "reply.gguf"), REPLY);
});

afterAll(async () => {
  await instrument?.close();
});

/** `run --http` from the bundle, ready once /health says 200; the MQTT API off. */
async function startRun(): Promise<{ url: URL; headers: Record<string, string>; stop: () => Promise<unknown> }> {
  const port = await freePort();
  const uri = `tcp://127.0.0.1:${instrument.port}`;
  const agent = spawnAgent([
    ...modelArgs(model),
    "--http",
    `127.0.0.1:${port}`,
    "--http-api-key",
    KEY,
    "--mqtt",
    "off",
    "--instrument",
    uri,
  ]);
  const health = `http://127.0.0.1:${port}/health`;
  const deadline = Date.now() + 60_000;
  while ((await fetch(health).catch(() => undefined))?.status !== 200) {
    if (agent.child.exitCode !== null || Date.now() > deadline)
      throw new Error(`run --http did not answer /health 200:\n${agent.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    url: new URL(`http://127.0.0.1:${port}/mcp`),
    headers: { authorization: `Bearer ${KEY}` },
    stop: async () => expect(await agent.stop(), agent.output()).toEqual({ code: 0, signal: null }),
  };
}

/** The handler on a bare node:http server, over an agent loaded here. */
async function startBare(): Promise<{ url: URL; headers: Record<string, string>; stop: () => Promise<unknown> }> {
  const flags = { model, mlock: "off", threads: "1", engine: "inline", instrument: `tcp://127.0.0.1:${instrument.port}` };
  const logger = createLogger({ level: "error" });
  const agent: LoadedAgent = await loadAgent(loadConfig({ flags }).config, logger);
  const handler = mcpHttpHandler(agent, logger);
  const server = http.createServer((req, res) => {
    if (req.url !== "/mcp") {
      res.writeHead(404).end();
      return;
    }
    const body = req.method === "POST" ? readJson(req) : Promise.resolve(undefined);
    void body.then((parsed) => handler(req, res, parsed));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`),
    headers: {},
    stop: async () => {
      await new Promise((resolve) => server.close(resolve));
      agent.service.queue.close();
      await agent.instrument?.close();
      await agent.runtime.dispose();
    },
  };
}

type ToolResult = { isError?: boolean; content: { type: string; text?: string }[] };

describe.each([
  { server: "run --http, at /mcp behind the API key", start: startRun },
  { server: "the handler on a bare node:http server", start: startBare },
])("MCP over streamable HTTP (stateless): $server", ({ start }) => {
  let client: Client;
  let url: URL;
  let headers: Record<string, string>;
  let stop: () => Promise<unknown>;

  beforeAll(async () => {
    ({ url, headers, stop } = await start());
    client = new Client({ name: "instrument-agent-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));
  });

  afterAll(async () => {
    await client?.close();
    await stop?.();
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
      const response = await fetch(url, { method, headers: { ...headers, accept: "text/event-stream" } });
      expect(response.status, method).toBe(405);
      expect(response.headers.get("allow")).toBe("POST");
    }
  });
});

describe("MCP over run --http, beside the rest of the API", () => {
  it("without the API key is refused with 401 before the MCP server sees it; an MCP ask counts under transport mcp in /metrics", async () => {
    const { url, headers, stop } = await startRun();
    try {
      const refused = new Client({ name: "instrument-agent-test", version: "1.0.0" });
      await expect(refused.connect(new StreamableHTTPClientTransport(url))).rejects.toMatchObject({
        code: 401,
        message: expect.stringContaining("IA_ERR_HTTP_UNAUTHORIZED"),
      });
      const wrong = await fetch(url, {
        method: "POST",
        headers: { authorization: "Bearer wrong", "content-type": "application/json" },
        body: "{}",
      });
      expect(wrong.status).toBe(401);
      const client = new Client({ name: "instrument-agent-test", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));
      await client.callTool({ name: "ask", arguments: { question: "hello" } });
      await client.close();
      const metrics = await (await fetch(new URL("/metrics", url), { headers })).text();
      expect(metrics).toMatch(/^instrument_agent_answers_total\{[^}]*transport="mcp"[^}]*\} 1$/m);
    } finally {
      await stop();
    }
  });
});
