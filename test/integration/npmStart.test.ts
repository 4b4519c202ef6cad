import { spawn } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/bundle.js";
import { synthModel, tempDir } from "../helpers/models.js";
import { freePort, waitForPort } from "../helpers/mosquitto.js";
import { isAlive, waitUntil } from "../helpers/wait.js";

// `kill <npm>` under `npm start` reaches npm's `sh -c`, never the agent: the agent must
// notice its parent is gone and stop, or it runs on orphaned with its broker and port.
describe("npm start", () => {
  it("kill of the npm process stops the agent and the mosquitto it started", async () => {
    const dir = tempDir("iagent-npm-start-");
    const model = await synthModel(dir);
    const port = await freePort();
    const npm = spawn(
      "npm",
      [
        "start",
        "--",
        "run",
        "--model",
        model,
        "--threads",
        "1",
        "--mlock",
        "off",
        "--mqtt-bind",
        `127.0.0.1:${port}`,
        "--agent-id",
        "npm-kill",
        "--state-dir",
        path.join(dir, "state"),
      ],
      {
        cwd: ROOT,
        env: { ...process.env, NO_COLOR: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    npm.stdout.setEncoding("utf8").on("data", (d: string) => (output += d));
    npm.stderr.setEncoding("utf8").on("data", (d: string) => (output += d));
    await waitUntil(() => output.includes("MQTT API serving"), { what: "the agent to serve MQTT", timeoutMs: 90_000 });
    await waitForPort(port, 5000);
    const agentPid = Number(/"pid":(\d+)/.exec(output)?.[1]);
    expect(agentPid).toBeGreaterThan(0);
    npm.kill("SIGTERM");
    await waitUntil(() => !isAlive(agentPid), {
      what: `the agent (pid ${agentPid}) to stop after npm was killed; output:\n${output}`,
      timeoutMs: 15_000,
    });
    expect(output).toContain("the npm that started this agent has ended");
    expect(output).toContain("MQTT API stopped");
    // Its mosquitto went with it: nothing listens on the port any more.
    await expect(waitForPort(port, 1000)).rejects.toThrow();
  }, 120_000);
});
