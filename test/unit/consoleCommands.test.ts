import { describe, expect, it } from "vitest";
import { CONSOLE_COMMANDS, helpText, parseConsoleLine } from "../../agent/console/consoleCommands.js";

function commandOf(line: string): string | undefined {
  const parsed = parseConsoleLine(line);
  return parsed.kind === "command" ? parsed.command.name : undefined;
}

describe("the console command table", () => {
  it("matches slash commands on their first word, in any case, with the rest as argument", () => {
    expect(commandOf("/help me")).toBe("/help");
    expect(commandOf("/STATUS")).toBe("/status");
    expect(parseConsoleLine("  /scpi  *IDN?  ")).toMatchObject({ kind: "command", argument: "*IDN?" });
  });

  it("takes restart and stop only as the whole line, so a question that starts with them reaches the model", () => {
    expect(commandOf("restart")).toBe("/reset");
    expect(commandOf(" Stop ")).toBe("/bye");
    expect(parseConsoleLine("stop frequency?")).toEqual({ kind: "question", text: "stop frequency?" });
    expect(parseConsoleLine("restart the sweep?")).toEqual({ kind: "question", text: "restart the sweep?" });
  });

  it("names an unknown slash command as typed, and ignores a blank line", () => {
    expect(parseConsoleLine("/NOPE x")).toEqual({ kind: "unknown", word: "/NOPE" });
    expect(parseConsoleLine("   ")).toEqual({ kind: "empty" });
  });

  it("lists every command and alias in the help", () => {
    const help = helpText([]);
    for (const command of CONSOLE_COMMANDS) {
      expect(help).toContain(command.name);
      for (const alias of command.aliases) expect(help).toContain(alias);
    }
    expect(CONSOLE_COMMANDS.map((command) => command.name)).toEqual(["/help", "/reset", "/status", "/scpi", "/bye"]);
  });
});
