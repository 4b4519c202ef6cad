import { describe, expect, it } from "vitest";
import { RateLimiter } from "../../common/rateLimiter.js";
import { invalidUtf8Offset, parseAsk, parseCancel, parseScpi, requestKey } from "../../agent/transports/mqtt/mqttRequest.js";
import { Outbox } from "../../agent/transports/mqtt/outbox.js";

const limits = { payloadLimit: 256, answerTopic: "ia/a1/answer", prefix: "ia", newId: () => "new-id" };
const ask = (payload: string | Buffer, props: { responseTopic?: string; correlationData?: Buffer } = {}) =>
  parseAsk({ payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), ...props }, limits);

describe("parseAsk", () => {
  it("reads plain text as a prompt and routes to <base>/answer/<new id>", () => {
    const parsed = ask("  What is RBW?  ");
    expect(parsed).toMatchObject({
      ok: true,
      request: { id: "new-id", idGiven: false, prompt: "What is RBW?", stream: false },
      route: { topic: "ia/a1/answer/new-id" },
    });
    // Only a payload starting with '{' is read as JSON.
    expect(ask("[1,2]")).toMatchObject({ ok: true, request: { prompt: "[1,2]" } });
  });

  it("prefers the MQTT 5 response topic, then replyTo; the correlation data is the default id", () => {
    const both = ask(JSON.stringify({ prompt: "x", replyTo: "lab/r" }), { responseTopic: "lab/v5", correlationData: Buffer.from("c-1") });
    expect(both).toMatchObject({ ok: true, request: { id: "c-1", idGiven: true }, route: { topic: "lab/v5" } });
    expect(ask(JSON.stringify({ id: 7, prompt: "x", replyTo: "lab/r" }))).toMatchObject({
      ok: true,
      request: { id: "7" },
      route: { topic: "lab/r" },
    });
    expect(ask("x", { correlationData: Buffer.from([0xff, 0x00]) })).toMatchObject({ ok: true, request: { id: "ff00" } });
  });

  it("reads messages, system, session, params and stream", () => {
    const parsed = ask(
      JSON.stringify({ messages: [{ role: "user", content: "hi" }], system: "s", params: { maxTokens: 8, temperature: 0 }, stream: true }),
    );
    expect(parsed).toMatchObject({
      ok: true,
      request: { messages: [{ role: "user", content: "hi" }], system: "s", params: { maxTokens: 8, temperature: 0 }, stream: true },
    });
  });

  it.each([
    ['{"prompt": 42}', /"prompt": expected a non-empty string, got number 42/],
    ['{"prompt": "x", "stream": "yes"}', /"stream": expected true or false/],
    ['{"prompt": "x", "params": {"maxTokens": 0}}', /"params.maxTokens": expected a whole number from 1/],
    ['{"prompt": "x", "params": {"temp": 1}}', /"params.temp": unknown parameter/],
    ['{"promt": "x"}', /unknown key "promt"/],
    ['{"prompt": "x", "messages": [{"role":"user","content":"y"}]}', /exactly one of/],
    ['{"messages": [{"role":"robot","content":"y"}]}', /messages\[0\]\.role/],
    ['{"messages": [{"role":"assistant","content":"y"}]}', /last message must have role "user"/],
    ['{"session": "s", "messages": [{"role":"user","content":"y"}]}', /send "prompt", not "messages"/],
    ['{"prompt": "x", "replyTo": "lab/#"}', /"replyTo": expected a topic without the wildcards/],
    ['{"prompt": "x", "replyTo": "ia/other/ask"}', /not an agent's ask/],
    ['{"prompt": "x"', /not valid JSON/],
    ["   ", /the payload is empty/],
  ])("%s is a bad request", (payload, message) => {
    const parsed = ask(payload);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.error.code).toBe("IA_ERR_BAD_REQUEST");
    expect(parsed.error.message).toMatch(message);
  });

  it("an error still reaches replyTo and keeps the id when those are readable", () => {
    const parsed = ask(JSON.stringify({ id: "q1", prompt: 1, replyTo: "lab/r" }));
    expect(parsed).toMatchObject({ ok: false, id: "q1", route: { topic: "lab/r" } });
  });

  it("refuses payloads over the cap without reading them, and invalid UTF-8 naming the byte", () => {
    const big = ask("x".repeat(257), { responseTopic: "lab/v5" });
    expect(big).toMatchObject({ ok: false, route: { topic: "lab/v5" } });
    if (!big.ok) expect(big.error.code).toBe("IA_ERR_PAYLOAD_TOO_LARGE");
    const bad = ask(Buffer.from([0x68, 0x69, 0xe2, 0x82]));
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.message).toContain("byte 0xe2 at offset 2");
  });
});

describe("UTF-8, cancel, scpi and request keys", () => {
  it("finds the first invalid UTF-8 byte", () => {
    expect(invalidUtf8Offset(Buffer.from("héllo 你好 🎛️"))).toBe(-1);
    expect(invalidUtf8Offset(Buffer.from([0x61, 0xc0, 0x80]))).toBe(1); // overlong
    expect(invalidUtf8Offset(Buffer.from([0xed, 0xa0, 0x80]))).toBe(0); // surrogate
    expect(invalidUtf8Offset(Buffer.from([0x61, 0x80]))).toBe(1);
    expect(invalidUtf8Offset(Buffer.from([0xf0, 0x9f, 0x8e]))).toBe(0); // cut short
  });

  it("reads cancel ids from JSON or plain text", () => {
    expect(parseCancel(Buffer.from('{"id":"q1"}'))).toBe("q1");
    expect(parseCancel(Buffer.from("q2"))).toBe("q2");
    expect(parseCancel(Buffer.from("{bad"))).toBeUndefined();
  });

  it("reads scpi queries", () => {
    expect(parseScpi({ payload: Buffer.from("*IDN?") }, limits)).toMatchObject({ ok: true, request: { query: "*IDN?" } });
    expect(parseScpi({ payload: Buffer.from('{"query": 5}') }, limits)).toMatchObject({ ok: false });
  });

  it("keys a redelivery by route and id, or by content when there is no id", () => {
    const route = { topic: "lab/r" };
    expect(requestKey(route, "a", true, { payload: Buffer.from("x") })).toBe(requestKey(route, "a", true, { payload: Buffer.from("y") }));
    expect(requestKey(route, "n1", false, { payload: Buffer.from("x") })).toBe(
      requestKey(route, "n2", false, { payload: Buffer.from("x") }),
    );
    expect(requestKey(route, "n1", false, { payload: Buffer.from("x") })).not.toBe(
      requestKey(route, "n1", false, { payload: Buffer.from("y") }),
    );
  });
});

describe("outbox and rate limiter", () => {
  it("the outbox keeps order and drops chunks before finals when full", () => {
    const outbox = new Outbox(3);
    const entry = (payload: string, kind: "chunk" | "final") => ({ topic: "t", payload, qos: 1 as const, retain: false, kind });
    outbox.push(entry("c1", "chunk"));
    outbox.push(entry("f1", "final"));
    outbox.push(entry("c2", "chunk"));
    outbox.push(entry("f2", "final"));
    expect(outbox.dropped).toBe(1);
    expect(outbox.drain().map((e) => e.payload)).toEqual(["f1", "c2", "f2"]);
    expect(outbox.size).toBe(0);
  });

  it("the rate limiter allows a burst of the per-minute rate, then refills over time", () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 3, now: () => now });
    expect([limiter.take("k"), limiter.take("k"), limiter.take("k"), limiter.take("k")]).toEqual([true, true, true, false]);
    expect(limiter.take("other")).toBe(true);
    now += 20_000;
    expect(limiter.take("k")).toBe(true);
    expect(limiter.take("k")).toBe(false);
    expect(new RateLimiter({ perMinute: 0 }).take("k")).toBe(true);
  });
});
