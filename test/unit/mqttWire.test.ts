import { describe, expect, it } from "vitest";
import { describeConnectError, refusedVersion } from "../../agent/transports/mqtt/brokerClient.js";
import { checkReplyTopic } from "../../agent/transports/mqtt/mqttRequest.js";
import { AGENT_TOPIC_SUFFIXES, agentSubscriptions, agentTopics, fleetTopics, isAgentOwnTopic } from "../../agent/transports/mqtt/topics.js";
import { answerFinal, answerFinalSchema, errorFinal, readReply, readStatus } from "../../agent/transports/mqtt/wire.js";
import { AgentError } from "../../common/errors.js";

describe("topics", () => {
  it("builds the README's topics from the prefix and the agent id or fleet", () => {
    const own = agentTopics("ia", "a1");
    expect([own.base, own.ask, own.cancel, own.scpi, own.status, own.health, own.answerFor("q1")]).toEqual([
      "ia/a1",
      "ia/a1/ask",
      "ia/a1/cancel",
      "ia/a1/scpi",
      "ia/a1/status",
      "ia/a1/health",
      "ia/a1/answer/q1",
    ]);
    const fleet = fleetTopics("ia", "bench");
    expect(fleet).toEqual({
      base: "ia/fleet/bench",
      ask: "ia/fleet/bench/ask",
      cancel: "ia/fleet/bench/cancel",
      sharedAsk: "$share/bench/ia/fleet/bench/ask",
    });
    expect(agentSubscriptions(own, fleet)).toEqual([
      "ia/a1/ask",
      "ia/a1/cancel",
      "ia/a1/scpi",
      "ia/a1/status",
      fleet.sharedAsk,
      fleet.cancel,
    ]);
  });

  it("the reply-topic rule refuses every agent-owned suffix, from the same list", () => {
    for (const suffix of AGENT_TOPIC_SUFFIXES) {
      expect(isAgentOwnTopic(`ia/other/${suffix}`, "ia"), suffix).toBe(true);
      expect(checkReplyTopic(`ia/other/${suffix}`, "ia")).toBe("a topic that is not an agent's ask, cancel, scpi, status or health topic");
    }
    expect(isAgentOwnTopic("ia/fleet/g/ask", "ia")).toBe(true);
    expect(isAgentOwnTopic("lab/r/ask", "ia")).toBe(false);
    expect(isAgentOwnTopic("ia/a1/answer/q1", "ia")).toBe(false);
  });
});

describe("reply payloads", () => {
  const result = {
    text: "RBW",
    finishReason: "stop" as const,
    usage: { promptTokens: 9, completionTokens: 3 },
    timings: { ttftMs: 12.6, tokensPerSecond: 5.55, promptTokensPerSecond: 80, totalMs: 600, queuedMs: 4 },
  };

  it("a final carries the README's fields, timings rounded, the session only when given", () => {
    const final = answerFinal("q1", "a1", result, undefined);
    expect(final).toEqual({
      id: "q1",
      done: true,
      agent: "a1",
      text: "RBW",
      finishReason: "stop",
      usage: { promptTokens: 9, completionTokens: 3 },
      timings: { ttftMs: 13, tokensPerSecond: 5.6, queuedMs: 4 },
    });
    expect(answerFinal("q1", "a1", result, "s1").session).toBe("s1");
    expect(answerFinalSchema.safeParse(final).success).toBe(true);
  });

  it("a requester reads chunks, finals and errors, and ignores anything else", () => {
    const read = (body: unknown) => readReply(Buffer.from(typeof body === "string" ? body : JSON.stringify(body)));
    expect(read({ id: "q1", seq: 0, delta: "R" })).toEqual({ id: "q1", seq: 0, delta: "R" });
    expect(read(answerFinal("q1", "a1", result, undefined))).toMatchObject({ done: true, text: "RBW" });
    const error = errorFinal("q2", "a1", new AgentError("IA_ERR_QUEUE_FULL", "queue full"));
    expect(read(error)).toEqual({ id: "q2", done: true, agent: "a1", error: { code: "IA_ERR_QUEUE_FULL", message: "queue full" } });
    expect(read({ id: "q1", done: true })).toBeUndefined();
    expect(read("not json")).toBeUndefined();
  });

  it("a retained status is read leniently: an online status without host or pid still counts", () => {
    expect(readStatus(Buffer.from('{"state":"online","since":"2025-01-01T00:00:00.000Z"}'))).toEqual({
      state: "online",
      since: "2025-01-01T00:00:00.000Z",
      host: "unknown",
      pid: 0,
      model: undefined,
    });
    expect(readStatus(Buffer.from('{"state":"offline","agent":"a1"}'))?.state).toBe("offline");
    expect(readStatus(Buffer.from("{"))).toBeUndefined();
  });
});

describe("connection refusals", () => {
  const url = "mqtt://user:pw@broker.lab:1883";
  const refusal = (code: number | string) => describeConnectError(Object.assign(new Error("refused"), { code }), url);

  it("names the reason from mqtt.js's table, the broker without its credentials, and the hint", () => {
    expect(refusal(134)).toMatchObject({
      code: "IA_ERR_MQTT_AUTH",
      message:
        "MQTT broker mqtt://broker.lab:1883 refused the login: bad user name or password (check --mqtt-username and IAGENT_MQTT_PASSWORD)",
    });
    expect(refusal(5)).toMatchObject({ code: "IA_ERR_MQTT_AUTH", message: expect.stringContaining("not authorized") });
    expect(refusal(1).message).toBe(
      "MQTT broker mqtt://broker.lab:1883 refused the connection: unacceptable protocol version; try --mqtt-version 3.1.1",
    );
    expect(refusal(132).message).toContain("unsupported protocol version; try --mqtt-version 3.1.1");
    expect(refusal(137)).toMatchObject({
      code: "IA_ERR_MQTT_CONNECT",
      message: expect.stringMatching(/refused the connection: server busy$/),
    });
    expect(refusal(250).message).toContain("reason code 250");
    expect(refusal("ECONNREFUSED").message).toBe(
      "cannot connect to MQTT broker mqtt://broker.lab:1883: connection refused (is the broker running on that port?)",
    );
  });

  it("tells a broker that speaks only 3.1.1 from other failures", () => {
    expect(refusedVersion(refusal(1))).toBe(true);
    expect(refusedVersion(refusal(132))).toBe(true);
    expect(refusedVersion(new AgentError("IA_ERR_MQTT_CONNECT", "MQTT broker x closed the connection before accepting it"))).toBe(true);
    expect(refusedVersion(refusal(134))).toBe(false);
    expect(refusedVersion(refusal("ECONNREFUSED"))).toBe(false);
  });
});
