import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { freePort, startMosquitto, waitForPort } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { mosquittoRr, run, tool } from "../helpers/thirdParty.js";
import { waitUntil } from "../helpers/wait.js";

// What a newcomer meets on MQTT, run from source as `npm start` runs it (no bundle), with
// clients other people wrote: mosquitto_rr (MQTT 5 only) and mosquitto_sub.

const dir = tempDir("iagent-mqtt-first-");
let model: string;
const agents: AgentProcess[] = [];
const brokers: Mosquitto[] = [];

function agent(args: string[], env: NodeJS.ProcessEnv = {}): AgentProcess {
  const started = spawnAgent(
    [...modelArgs(model), "--max-tokens", "8", "--temperature", "0", "--state-dir", path.join(dir, "state"), ...args],
    env,
    { fromSource: true },
  );
  agents.push(started);
  return started;
}

/** mosquitto_rr: an MQTT 5 request with a response topic; resolves with the parsed final. */
function askWithRr(port: number, agentId: string): Promise<Record<string, unknown>> {
  return mosquittoRr(port, `instrument-agent/${agentId}/ask`, `reply/${agentId}`, '{"prompt":"hi"}');
}

beforeAll(async () => {
  tool("mosquitto", "mosquitto");
  model = await synthModel(dir);
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  for (const b of brokers) await b.stop();
});

describe("--mqtt embedded (the default) with mosquitto installed", () => {
  it("starts mosquitto as an MQTT 5 broker: mosquitto_rr gets one final answer, and SIGTERM stops both", async () => {
    const port = await freePort();
    const a = agent(["--mqtt-bind", `127.0.0.1:${port}`, "--agent-id", "rr"]);
    await waitForPort(port, 60_000);
    await waitForStatus(`mqtt://127.0.0.1:${port}`, "instrument-agent/rr", "online", a, 60_000, { protocolVersion: 5 });
    const final = await askWithRr(port, "rr");
    expect(final).toMatchObject({ done: true, agent: "rr", finishReason: "length" });
    expect(a.output()).toContain("mosquitto 2");
    expect(a.output()).toContain("(MQTT 5)");
    const exit = await a.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    // The broker went with the agent: nothing listens on its port any more.
    const listening = await run(tool("mosquitto_sub", "mosquitto-clients"), [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-t",
      "x",
      "-C",
      "1",
      "-W",
      "1",
    ]);
    expect(listening.code).not.toBe(0);
  });

  it("after kill -9 of the agent, the next start takes over the mosquitto it left and the question waiting in it", async () => {
    const port = await freePort();
    const stateDir = path.join(dir, "state-leftover");
    const first = agent(["--mqtt-bind", `127.0.0.1:${port}`, "--agent-id", "left", "--state-dir", stateDir]);
    await waitForPort(port, 60_000);
    await waitForStatus(`mqtt://127.0.0.1:${port}`, "instrument-agent/left", "online", first, 60_000, { protocolVersion: 5 });
    first.child.kill("SIGKILL");
    await first.exited;
    // mosquitto outlived it (a signal to the agent does not reach its child) and keeps the
    // agent's persistent session: a question sent now waits there.
    const pub = tool("mosquitto_pub", "mosquitto-clients");
    const sub = tool("mosquitto_sub", "mosquitto-clients");
    const reply = run(sub, ["-h", "127.0.0.1", "-p", String(port), "-t", "lab/left/r", "-q", "1", "-C", "1", "-W", "90"], 95_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const sent = await run(pub, [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-q",
      "1",
      "-t",
      "instrument-agent/left/ask",
      "-m",
      JSON.stringify({ id: "w1", prompt: "hi", replyTo: "lab/left/r" }),
    ]);
    expect(sent.code).toBe(0);
    const second = agent(["--mqtt-bind", `127.0.0.1:${port}`, "--agent-id", "left", "--state-dir", stateDir]);
    const final = JSON.parse((await reply).stdout) as Record<string, unknown>;
    expect(final).toMatchObject({ id: "w1", done: true, agent: "left" });
    expect(second.output()).toContain("left running by an earlier run of the agent");
    expect(await second.stop()).toEqual({ code: 0, signal: null });
    const after = await run(sub, ["-h", "127.0.0.1", "-p", String(port), "-t", "x", "-C", "1", "-W", "1"]);
    expect(after.code).not.toBe(0);
  });

  it("falls back to aedes without mosquitto and says it is MQTT 3.1.1 only", async () => {
    const port = await freePort();
    const a = agent(["--mqtt-bind", `127.0.0.1:${port}`, "--agent-id", "fallback"], { INSTRUMENT_AGENT_MOSQUITTO: "none" });
    await waitForPort(port, 60_000);
    await waitForStatus(`mqtt://127.0.0.1:${port}`, "instrument-agent/fallback", "online", a, 60_000, { protocolVersion: 4 });
    expect(a.output()).toContain("aedes (MQTT 3.1.1 only)");
    expect(a.output()).toContain("install it (apt-get install mosquitto)");
    expect(await a.stop()).toEqual({ code: 0, signal: null });
  });

  it("an explicit --mqtt-bind that is taken is an error naming the address (exit 1)", async () => {
    const broker = await startMosquitto();
    brokers.push(broker);
    const a = agent(["--mqtt-bind", `127.0.0.1:${broker.port}`, "--agent-id", "busy"]);
    const exit = await a.exited;
    expect(exit.code).toBe(1);
    expect(a.output()).toContain("IA_ERR_MQTT_BIND");
    expect(a.output()).toContain(`127.0.0.1:${broker.port}`);
  });
});

describe("a site broker", () => {
  it("started after the agent: the agent stays up and turns online within 10 s of the broker starting", async () => {
    const port = await freePort();
    const a = agent(["--mqtt", `mqtt://127.0.0.1:${port}`, "--agent-id", "late"]);
    await waitUntil(() => a.output().includes("MQTT broker not reachable yet"), {
      what: "the agent to say the broker is not up",
      timeoutMs: 60_000,
    });
    // Long enough for the backoff to grow to its ceiling.
    await new Promise((resolve) => setTimeout(resolve, 8000));
    expect(a.child.exitCode).toBeNull();
    const broker = await startMosquitto({ port });
    brokers.push(broker);
    const started = Date.now();
    await waitForStatus(broker.url, "instrument-agent/late", "online", a, 10_000, { protocolVersion: 5 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await askWithRr(port, "late")).done).toBe(true);
    expect(await a.stop()).toEqual({ code: 0, signal: null });
  });

  it("a second agent with the same id: one clear error within 10 s, no reconnect loop, the first keeps answering", async () => {
    const broker = await startMosquitto();
    brokers.push(broker);
    const first = agent(["--mqtt", broker.url, "--agent-id", "twin"]);
    const online = await waitForStatus(broker.url, "instrument-agent/twin", "online", first, 60_000);
    const began = Date.now();
    const second = agent(["--mqtt", broker.url, "--agent-id", "twin"]);
    const exit = await second.exited;
    // MQTT was its only transport, so it ends, with the error naming the id and the other agent.
    expect(exit.code).toBe(1);
    expect(Date.now() - began).toBeLessThan(30_000);
    const out = second.output();
    expect(out).toContain("IA_ERR_MQTT_DUPLICATE_ID");
    expect(out).toContain(`agent id "twin" is already online`);
    expect(out).toContain(`pid ${String(online.pid)}`);
    // One error for the person, one log entry; no reconnect attempts at all.
    expect(out.match(/^error IA_ERR_MQTT_DUPLICATE_ID: /gm)).toHaveLength(1);
    expect(out).not.toContain("reconnecting");
    // The first never lost its connection and still answers.
    expect(first.output()).not.toContain("MQTT connection lost");
    expect((await askWithRr(broker.port, "twin")).agent).toBe("twin");
    const status = await waitForStatus(broker.url, "instrument-agent/twin", "online", first, 5000);
    expect(status.pid).toBe(online.pid);
  });

  it("after kill -9 the will turns the status offline and a new agent takes the id", async () => {
    const broker = await startMosquitto();
    brokers.push(broker);
    const doomed = agent(["--mqtt", broker.url, "--agent-id", "phoenix"]);
    await waitForStatus(broker.url, "instrument-agent/phoenix", "online", doomed, 60_000);
    doomed.child.kill("SIGKILL");
    await doomed.exited;
    await waitForStatus(broker.url, "instrument-agent/phoenix", "offline", doomed, 10_000);
    const reborn = agent(["--mqtt", broker.url, "--agent-id", "phoenix"]);
    const status = await waitForStatus(broker.url, "instrument-agent/phoenix", "online", reborn, 60_000);
    expect(status.pid).toBe(reborn.child.pid);
    // The dead agent's session still held its own "online" publish; the new agent must not
    // take it for a live twin (it did, in about half the runs, before isStale was checked there).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(reborn.child.exitCode).toBeNull();
    expect(reborn.output()).not.toContain("IA_ERR_MQTT_DUPLICATE_ID");
  });
});
