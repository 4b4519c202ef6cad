import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { freePort, requireMosquittoClients, waitForPort } from "../helpers/mosquitto.js";
import { spawnAgent, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { run } from "../helpers/thirdParty.js";

// The in-process aedes broker that `--mqtt embedded` falls back to on a host without
// mosquitto (INSTRUMENT_AGENT_MOSQUITTO=none here), served to the mosquitto command-line
// clients (MQTT 3.1.1). mqttFirstContact.test.ts covers the mosquitto it prefers.
const dir = tempDir("iagent-mqtt-embedded-");
let model: string;
let agent: AgentProcess;
let port: number;

beforeAll(async () => {
  model = await synthModel(dir);
  port = await freePort();
  agent = spawnAgent(
    [
      ...modelArgs(model),
      "--max-tokens",
      "8",
      "--temperature",
      "0",
      "--mqtt",
      "embedded",
      "--mqtt-bind",
      `127.0.0.1:${port}`,
      "--agent-id",
      "emb",
      "--log-level",
      "warn",
    ],
    { INSTRUMENT_AGENT_MOSQUITTO: "none" },
  );
  await waitForPort(port, 60_000);
  await waitForStatus(`mqtt://127.0.0.1:${port}`, "instrument-agent/emb", "online", agent, 60_000, { protocolVersion: 4 });
});

afterAll(async () => {
  await agent?.stop();
});

describe("the embedded broker", () => {
  it("serves mosquitto_pub / mosquitto_sub (MQTT 3.1.1) end to end", async () => {
    const { pub, sub } = requireMosquittoClients();
    const common = ["-h", "127.0.0.1", "-p", String(port), "-V", "mqttv311"];
    const listening = run(sub, [...common, "-t", "lab/emb/r", "-q", "1", "-C", "1", "-W", "30"]);
    const status = await run(sub, [...common, "-t", "instrument-agent/emb/status", "-C", "1", "-W", "10"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: "online", agent: "emb" });
    const published = await run(pub, [
      ...common,
      "-q",
      "1",
      "-t",
      "instrument-agent/emb/ask",
      "-m",
      JSON.stringify({ id: "e1", prompt: "hello", replyTo: "lab/emb/r" }),
    ]);
    expect(published.code).toBe(0);
    const reply = await listening;
    expect(reply.code).toBe(0);
    const final = JSON.parse(reply.stdout) as {
      id: string;
      done: boolean;
      agent: string;
      text: string;
      usage: { completionTokens: number };
    };
    expect(final).toMatchObject({ id: "e1", done: true, agent: "emb" });
    expect(final.usage.completionTokens).toBeGreaterThan(0);
  });

  it("ask --via works against it (falls back to MQTT 3.1.1)", async () => {
    const result = await runAgent(["ask", "--via", `mqtt://127.0.0.1:${port}`, "--agent-id", "emb", "--json", "hi"], { timeoutMs: 30_000 });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ done: true, agent: "emb" });
  });

  it("refuses to listen beyond loopback without a login (exit 2, naming the setting)", async () => {
    const result = await runAgent(["run", ...modelArgs(model), "--mqtt", "embedded", "--mqtt-bind", "0.0.0.0:0", "--log-level", "error"], {
      timeoutMs: 60_000,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--mqtt-bind 0.0.0.0:0");
    expect(result.stderr).toContain("mqttUsername");
  });
});
