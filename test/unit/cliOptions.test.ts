import { readFileSync } from "node:fs";
import path from "node:path";
import { Command, CommanderError } from "commander";
import type { Option } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { addCommand, globalOptions } from "../../agent/cli/commandSpec.js";
import type { CommandSpec, Invocation } from "../../agent/cli/commandSpec.js";
import { oneOf, wholeNumber } from "../../agent/cli/commandOption.js";
import { buildProgram } from "../../agent/cli/program.js";
import { envNameFor, flagNameFor, loadConfig } from "../../agent/config/config.js";
import { SETTING_KEYS, SETTINGS, settingArg } from "../../agent/config/settings.js";
import { choicesOf } from "../../agent/config/settingValues.js";
import { SYNTHETIC_WEIGHT_TYPES } from "../../models/synth/syntheticModel.js";
import { SYNTHETIC_SHAPE_NAMES } from "../../models/synth/syntheticShapes.js";
import { ROOT } from "../helpers/bundle.js";

const silent = { writeOut: () => undefined, writeErr: () => undefined };
const program = () => buildProgram(silent, "0.0.0-test").program;

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

function ancestors(command: Command): Command[] {
  return command.parent ? [command.parent, ...ancestors(command.parent)] : [];
}

function pathOf(command: Command): string {
  return [...ancestors(command).reverse(), command].map((c) => c.name()).join(" ");
}

const longNames = (options: readonly Option[]) => options.map((option) => option.long ?? option.flags);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("every option is declared once", () => {
  it("no command declares an option twice, or one that the program (a global) declares too", () => {
    const clashes: string[] = [];
    for (const command of allCommands(program())) {
      const own = longNames(command.options);
      const inherited = new Set(ancestors(command).flatMap((parent) => longNames(parent.options)));
      const seen = new Set<string>();
      for (const name of own) {
        if (seen.has(name)) clashes.push(`${pathOf(command)}: ${name} twice`);
        if (inherited.has(name)) clashes.push(`${pathOf(command)}: ${name} is also global`);
        seen.add(name);
      }
    }
    expect(clashes).toEqual([]);
  });

  it("the program's own options are the config file and the log, nothing a command reads alone", () => {
    expect(longNames(program().options)).toEqual(["--version", "--config", "--log-level", "--log-file"]);
  });

  it("models synth --shape and --seed are the synthetic model's, with exactly the shapes and types the writer accepts", () => {
    const synth = allCommands(program()).find((command) => pathOf(command) === "instrument-agent models synth");
    const option = (name: string) => synth?.options.find((o) => o.long === name);
    expect(option("--shape")?.argChoices).toEqual([...SYNTHETIC_SHAPE_NAMES, "scripted"]);
    expect(option("--type")?.argChoices).toEqual([...SYNTHETIC_WEIGHT_TYPES]);
    expect(option("--seed")?.description).toContain("random weights");
    // The deployment shape and the sampling settings are not synth's.
    expect(option("--threads")).toBeUndefined();
    expect(option("--temperature")).toBeUndefined();
  });

  it("a command's --help lists its own options and the global ones, and no other command's", () => {
    const help = (args: string[]) => {
      let text = "";
      const { program: cli } = buildProgram({ writeOut: (t) => (text += t), writeErr: () => undefined }, "0.0.0-test");
      expect(() => cli.parse(["node", "instrument-agent", ...args, "--help"])).toThrow(CommanderError);
      return text;
    };
    const synth = help(["models", "synth"]);
    expect(synth).toMatch(/--shape <shape>\s+model shape; scripted: says --reply \(choices: "tiny",\s+"tiny-qwen3"/);
    expect(synth).toContain("Global Options:");
    expect(synth).toContain("--log-level <level>");
    expect(synth).not.toContain("--threads");
    expect(synth).not.toContain("beside-instrument");
    const smoke = help(["smoke"]);
    expect(smoke).toContain("--smoke-tokens <n>");
    expect(smoke).toMatch(/--mqtt <url\|embedded\|off>\s+MQTT broker \(default: off\)/);
    expect(smoke).not.toContain("--bench-runs");
    expect(smoke).not.toContain("--serial-parity");
  });
});

describe("the settings table", () => {
  it("shows a setting's choices in its help exactly as its schema accepts them", () => {
    for (const key of SETTING_KEYS) {
      const choices = choicesOf(SETTINGS[key].schema);
      if (!choices) continue;
      const shown = SETTINGS[key].arg === undefined ? settingArg(key) : SETTINGS[key].help;
      expect(shown, key).toContain(choices.join("|"));
      for (const choice of choices)
        expect(loadConfig({ flags: { [key]: String(choice) }, env: {}, cwd: "/nonexistent-dir" }).sources[key], key).toBe("flag");
    }
  });

  it("gives every setting a placeholder, choices, or an on/off schema", () => {
    for (const key of SETTING_KEYS) {
      if (settingArg(key) !== undefined) continue;
      expect(SETTINGS[key].schema.safeParse(true).success, key).toBe(true);
    }
  });

  it("holds every flag, variable and config key of the README's settings table", () => {
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("| flag | env | config key | default |"));
    const rows = table.slice(0, table.indexOf("\n\n")).split("\n").slice(2);
    expect(rows.length).toBeGreaterThan(30);
    for (const row of rows) {
      const [flags = "", envs = "", keys = ""] = row.split(/(?<!\\)\|/).slice(1);
      for (const flag of flags.match(/--[a-z-]+/g) ?? []) {
        const key = flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
        expect(SETTING_KEYS, flag).toContain(key);
        expect(flagNameFor(key)).toBe(flag);
      }
      for (const env of envs.match(/IAGENT_[A-Z_]+/g) ?? []) expect(SETTING_KEYS.map(envNameFor), env).toContain(env);
      for (const key of keys.match(/`([a-zA-Z]+)`/g) ?? []) expect(SETTING_KEYS, key).toContain(key.slice(1, -1));
    }
  });
});

describe("a command made from its spec", () => {
  interface TestOptions {
    size: number;
    kind: "a" | "b";
  }

  function withSpec(run: (invocation: Invocation<TestOptions>) => Promise<number>) {
    let exitCode = -1;
    const root = new Command("t").exitOverride().configureOutput(silent);
    for (const option of globalOptions()) root.addOption(option);
    const spec: CommandSpec<TestOptions> = {
      name: "try",
      description: "a test command",
      arguments: [{ syntax: "[words...]", help: "words" }],
      settings: ["threads", "json"],
      defaults: { logLevel: "error" },
      options: {
        size: { arg: "<n>", help: "a size", default: "3", parse: wholeNumber(1, 9) },
        kind: { arg: "<kind>", help: "a kind", choices: ["a", "b"], default: "a", parse: oneOf(["a", "b"] as const) },
      },
      run,
    };
    addCommand(root, spec, (code) => (exitCode = code));
    return {
      parse: async (...args: string[]) => {
        await root.parseAsync(["node", "t", ...args]);
        return exitCode;
      },
    };
  }

  it("hands over its options typed, the settings typed as flags (globals anywhere), and returns the handler's exit code", async () => {
    let seen: Invocation<TestOptions> | undefined;
    const { parse } = withSpec(async (invocation) => {
      seen = invocation;
      return 3;
    });
    expect(await parse("try", "one", "--size", "7", "--threads", "2", "two", "--log-level", "debug", "--json")).toBe(3);
    expect(seen?.args).toEqual(["one", "two"]);
    expect(seen?.options).toEqual({ size: 7, kind: "a" });
    expect(seen?.flags).toEqual({ threads: "2", json: true, logLevel: "debug" });
  });

  it("refuses a bad value by naming the flag, a choice outside the list, and a flag the command does not take", async () => {
    const { parse } = withSpec(async () => 0);
    await expect(parse("try", "--size", "12")).rejects.toThrow('--size: expected a whole number from 1 to 9, got "12"');
    await expect(parse("try", "--kind", "c")).rejects.toThrow(/Allowed choices are a, b/);
    await expect(parse("try", "--mqtt", "off")).rejects.toThrow(/unknown option '--mqtt'/);
  });

  it("sets up with the command's defaults under the user's flags", async () => {
    const levels: string[] = [];
    const { parse } = withSpec(async ({ setUp }) => {
      levels.push(setUp().config.logLevel);
      return 0;
    });
    await parse("try");
    await parse("try", "--log-level", "warn");
    expect(levels).toEqual(["error", "warn"]);
  });
});

describe("the real program", () => {
  it("resolves to the exit code of the command it ran", async () => {
    const write = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const cli = buildProgram(silent, "0.0.0-test");
    expect(await cli.run(["node", "instrument-agent", "models", "verify", path.join(ROOT, "no-such-model.gguf")])).toBe(3);
    expect(write.mock.calls.join("")).toContain("IA_ERR_MODEL_NOT_FOUND");
  });

  it("refuses a synth shape outside the list before any work, naming the choices", async () => {
    const cli = buildProgram(silent, "0.0.0-test");
    await expect(cli.run(["node", "instrument-agent", "models", "synth", "--shape", "bogus"])).rejects.toThrow(
      /Allowed choices are tiny, tiny-qwen3/,
    );
  });
});
