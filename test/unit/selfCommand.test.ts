import { describe, expect, it } from "vitest";
import { selfCommand } from "../../agent/cli/selfCommand.js";

describe("selfCommand", () => {
  it("names the command that exists where the agent runs", () => {
    expect(selfCommand("/home/lab/instrument-agent/agent/main.ts")).toBe("npm start --");
    expect(selfCommand("/home/lab/instrument-agent/dist/instrument-agent.mjs")).toBe("node dist/instrument-agent.mjs");
    expect(selfCommand("/opt/instrument-agent/instrument-agent.mjs")).toBe("instrument-agent");
    expect(selfCommand("C:\\instrument-agent\\instrument-agent.mjs")).toBe("instrument-agent");
  });
});
