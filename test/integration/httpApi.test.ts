import { networkInterfaces } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelArgs, tempDir } from "../helpers/models.js";
import { freePort } from "../helpers/mosquitto.js";
import { spawnAgent } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { run, scriptedModel, tool } from "../helpers/thirdParty.js";

// The HTTP API of the real bundle (`run --http`), reached by the official openai npm client and
// by curl, with a scripted model so every answer is known to the character.

const dir = tempDir("iagent-http-");
const SCRIPT = "The RBW is 1 MHz.";
const question = [{ role: "user" as const, content: "What is the RBW?" }];
let model: string;

beforeAll(async () => {
  model = await scriptedModel(path.join(dir, "rbw.gguf"), SCRIPT);
});

/** Starts `run` and waits until `/health` says ok (polling from the first moment: 503 or no answer before). */
async function startAgent(args: string[], base: string, env: NodeJS.ProcessEnv = {}, file = model): Promise<AgentProcess> {
  const agent = spawnAgent([...modelArgs(file), "--mqtt", "off", ...args], env);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await fetch(`${base}/health`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return agent;
    if (agent.child.exitCode !== null || Date.now() > deadline)
      throw new Error(`run ${args.join(" ")}: /health never said ok (last status ${status})\n${agent.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function post(url: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });
  return { status: response.status, body: (await response.json()) as { error?: { code: string; message: string; type: string } } };
}

describe("run --http 127.0.0.1:<port>: the OpenAI-compatible API", () => {
  let agent: AgentProcess;
  let base: string;
  let client: OpenAI;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    agent = await startAgent(["--http", `127.0.0.1:${port}`], base);
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused-on-loopback", maxRetries: 0 });
  }, 90_000);

  afterAll(async () => {
    const exit = await agent?.stop();
    expect(exit?.code, agent?.output()).toBe(0);
  });

  it("the openai client gets a non-streamed answer, with usage and the instrument_tools field", async () => {
    const reply = await client.chat.completions.create({ model: "any", messages: question, temperature: 0, seed: 7, max_tokens: 64 });
    expect(reply.object).toBe("chat.completion");
    expect(reply.model).toBe("rbw.gguf");
    expect(reply.choices).toEqual([
      expect.objectContaining({
        index: 0,
        message: expect.objectContaining({ role: "assistant", content: SCRIPT }),
        finish_reason: "stop",
      }),
    ]);
    expect(reply.usage!.completion_tokens).toBeGreaterThan(0);
    expect(reply.usage!.total_tokens).toBe(reply.usage!.prompt_tokens + reply.usage!.completion_tokens);
    expect((reply as unknown as { instrument_tools: unknown[] }).instrument_tools).toEqual([]);
  });

  it("the openai client gets a streamed answer: deltas that add up to the text, then usage", async () => {
    const stream = await client.chat.completions.create({
      model: "any",
      messages: question,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe(SCRIPT);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish?.choices[0]?.finish_reason).toBe("stop");
    expect((finish as unknown as { instrument_tools: unknown[] }).instrument_tools).toEqual([]);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it("curl -N shows the SSE chunks and data: [DONE]", async () => {
    const curl = tool("curl", "curl");
    const body = JSON.stringify({ messages: question, stream: true });
    const result = await run(curl, ["-sN", `${base}/v1/chat/completions`, "-H", "Content-Type: application/json", "-d", body]);
    expect(result.code, result.stderr).toBe(0);
    const events = result.stdout.split("\n\n").filter((e) => e !== "");
    expect(
      events.every((e) => e.startsWith("data: ")),
      result.stdout,
    ).toBe(true);
    expect(events.at(-1)).toBe("data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as { object: string; choices: { delta: { content?: string } }[] });
    expect(new Set(chunks.map((c) => c.object))).toEqual(new Set(["chat.completion.chunk"]));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(SCRIPT);
  });

  it("a stop string ends the answer before it", async () => {
    const reply = await client.chat.completions.create({ model: "any", messages: question, stop: ["1 MHz"] });
    expect(reply.choices[0]!.message.content).toBe("The RBW is ");
    expect(reply.choices[0]!.finish_reason).toBe("stop");
  });

  it("completions complete the prompt in raw mode; models lists the loaded model", async () => {
    const completion = await client.completions.create({ model: "any", prompt: "RBW means", max_tokens: 4 });
    expect(completion.object).toBe("text_completion");
    expect(completion.choices[0]!.finish_reason).toBe("length");
    expect(completion.usage!.completion_tokens).toBe(4);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["rbw.gguf"]);
  });

  it("client-side tools are refused with a clear 400; a bad field is named", async () => {
    const tools = [{ type: "function" as const, function: { name: "f", parameters: {} } }];
    const error = await client.chat.completions.create({ model: "any", messages: question, tools }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("IA_ERR_CLIENT_TOOLS");
    expect((error as Error).message).toContain('"tools": client-side tools are not supported');
    const bad = await post(`${base}/v1/chat/completions`, JSON.stringify({ messages: question, temperature: 9 }));
    expect(bad).toEqual({
      status: 400,
      body: { error: { code: "IA_ERR_BAD_REQUEST", type: "invalid_request_error", message: expect.stringContaining('"temperature"') } },
    });
  });

  it("a 2 MB body gets 413 unread, and the agent goes on answering", async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 0x20);
    const refused = await post(`${base}/v1/chat/completions`, big);
    expect(refused.status).toBe(413);
    expect(refused.body.error).toMatchObject({ code: "IA_ERR_HTTP_BODY_TOO_LARGE", message: expect.stringContaining("2097152 bytes") });
    const reply = await client.chat.completions.create({ model: "any", messages: question });
    expect(reply.choices[0]!.message.content).toBe(SCRIPT);
  });

  it("/health says ok with the model and the queue; an unknown path is 404", async () => {
    const health = (await (await fetch(`${base}/health`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ status: "ok", model: { id: "rbw.gguf" }, queue: { running: 0, waiting: 0 }, instrument: null });
    expect(health.answered).toBeGreaterThanOrEqual(5);
    const missing = await fetch(`${base}/v2/nothing`);
    expect(missing.status).toBe(404);
  });
});

/** This machine's own address beyond loopback, to reach `--http 0.0.0.0:<port>` as the lab network would. */
function ownAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const entry of list ?? []) if (entry.family === "IPv4" && !entry.internal) return entry.address;
  throw new Error("this machine has no IPv4 address beyond loopback: the beyond-loopback test needs one (a network interface)");
}

describe("run --http 0.0.0.0:<port>: beyond loopback, with an API key and a rate limit", () => {
  const KEY = "lab-key-4f1c2e9a";
  let agent: AgentProcess;
  let base: string;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://${ownAddress()}:${port}`;
    agent = await startAgent(["--http", `0.0.0.0:${port}`, "--http-rate-limit", "3", "--log-level", "debug"], base, {
      IAGENT_HTTP_API_KEY: KEY,
    });
  }, 90_000);

  afterAll(async () => {
    const exit = await agent?.stop();
    expect(exit?.code).toBe(0);
    expect(agent.output()).not.toContain(KEY);
  });

  it("without a key listening beyond loopback is refused at start", async () => {
    const port = await freePort();
    const refused = spawnAgent([...modelArgs(model), "--mqtt", "off", "--http", `0.0.0.0:${port}`]);
    const exit = await refused.exited;
    expect(exit.code).toBe(2);
    expect(refused.output()).toContain("IA_ERR_CONFIG");
    expect(refused.output()).toContain(`--http 0.0.0.0:${port}: the HTTP API listens beyond this host only with a key`);
  });

  it("a missing or wrong key gets 401 (the openai client too); the right one is answered", async () => {
    const none = await post(`${base}/v1/chat/completions`, JSON.stringify({ messages: question }));
    expect(none.status).toBe(401);
    expect(none.body.error).toMatchObject({ code: "IA_ERR_HTTP_UNAUTHORIZED", type: "authentication_error" });
    const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: "not-the-key", maxRetries: 0 });
    const error = await wrong.chat.completions.create({ model: "any", messages: question }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((error as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe("IA_ERR_HTTP_UNAUTHORIZED");
    const right = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0 });
    const reply = await right.chat.completions.create({ model: "any", messages: question });
    expect(reply.choices[0]!.message.content).toBe(SCRIPT);
  });

  it("a burst over --http-rate-limit gets 429, and the agent keeps serving", async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    const statuses: number[] = [];
    // One question went already (previous test); 3 a minute leaves 2, then 429.
    for (let i = 0; i < 4; i++)
      statuses.push((await post(`${base}/v1/chat/completions`, JSON.stringify({ messages: question }), auth)).status);
    expect(statuses).toEqual([200, 200, 429, 429]);
    const limited = await post(`${base}/v1/completions`, JSON.stringify({ prompt: "x" }), auth);
    expect(limited.body.error).toMatchObject({ code: "IA_ERR_RATE_LIMITED", type: "rate_limit_error" });
    const models = await fetch(`${base}/v1/models`, { headers: auth });
    expect(models.status).toBe(200);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });
});

describe("run --http --instrument sim --tools on: the agent's own instrument calls", () => {
  const AFTER = "The resolution bandwidth is as read.";
  const call = '<tool_call>\n{"name": "scpi_query", "arguments": {"query": ":SENS:BAND:RES?"}}\n</tool_call>';
  let agent: AgentProcess;
  let client: OpenAI;

  beforeAll(async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const caller = await scriptedModel(path.join(dir, "caller.gguf"), call, AFTER);
    agent = await startAgent(["--http", `127.0.0.1:${port}`, "--instrument", "sim", "--tools", "on"], base, {}, caller);
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused-on-loopback", maxRetries: 0 });
  }, 90_000);

  afterAll(async () => {
    expect((await agent?.stop())?.code, agent?.output()).toBe(0);
  });

  const expected = [
    { name: "scpi_query", arguments: { query: ":SENS:BAND:RES?" }, result: { reply: expect.stringMatching(/^[-+\d.eE]+$/) } },
  ];

  it("are in instrument_tools of the response, and the answer is the one after the call", async () => {
    const reply = await client.chat.completions.create({ model: "any", messages: question });
    expect(reply.choices[0]!.message.content).toBe(AFTER);
    expect((reply as unknown as { instrument_tools: unknown[] }).instrument_tools).toEqual(expected);
  });

  it("are on the chunk with finish_reason when streaming", async () => {
    const stream = await client.chat.completions.create({ model: "any", messages: question, stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe(AFTER);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason) as unknown as { instrument_tools: unknown[] };
    expect(finish.instrument_tools).toEqual(expected);
  });
});
