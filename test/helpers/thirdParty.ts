import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { runAgent } from "./bundle.js";

/** A tool other people wrote (mosquitto_rr, python3...), or a failure that says what to install. Never a skip. */
export function tool(name: string, install: string): string {
  for (const folder of (process.env.PATH ?? "").split(path.delimiter).concat(["/usr/sbin", "/usr/bin"])) {
    const file = path.join(folder, name);
    if (existsSync(file)) return file;
  }
  throw new Error(`${name} is not installed: apt-get install ${install} (.ci/run installs it)`);
}

export function run(binary: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** mosquitto_rr (MQTT 5 request/response): publishes `payload` to `topic` and resolves with the parsed final on `replyTopic`. */
export async function mosquittoRr(port: number, topic: string, replyTopic: string, payload: string): Promise<Record<string, unknown>> {
  const rr = tool("mosquitto_rr", "mosquitto-clients");
  const result = await run(rr, [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-V",
    "mqttv5",
    "-t",
    topic,
    "-e",
    replyTopic,
    "-m",
    payload,
    "-W",
    "60",
  ]);
  if (result.code !== 0 || result.stderr !== "") throw new Error(`mosquitto_rr exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

/** `models synth --shape scripted`: a model that answers anything with `reply` (and with `afterTool` once a tool result is in). */
export async function scriptedModel(file: string, reply: string, afterTool?: string): Promise<string> {
  const args = ["models", "synth", "--shape", "scripted", "--reply", reply, "--out", file];
  const result = await runAgent(afterTool === undefined ? args : [...args, "--after-tool", afterTool]);
  if (result.code !== 0) throw new Error(`models synth --shape scripted failed: ${result.stderr}`);
  return file;
}
