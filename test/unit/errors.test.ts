import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { AgentError, ERROR_CODES, toAgentError } from "../../common/errors.js";

describe("error registry", () => {
  it("every code has a row in the README's table with its exit code", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    for (const [code, row] of Object.entries(ERROR_CODES)) {
      expect(readme, code).toContain(`| \`${code}\` | ${row.exit} |`);
    }
  });

  it("exit codes follow the README: 2 for bad input, 3 for failed checks", () => {
    expect(new AgentError("IA_ERR_GGUF_MAGIC", "x").exitCode).toBe(2);
    expect(new AgentError("IA_ERR_CHECKSUM", "x").exitCode).toBe(3);
    expect(new AgentError("IA_ERR_MODEL_LOAD", "x").exitCode).toBe(1);
  });

  it("turns anything thrown into a coded error for the boundaries", () => {
    const wrapped = toAgentError(new TypeError("boom"));
    expect(wrapped.code).toBe("IA_ERR_INTERNAL");
    expect(wrapped.toJSON()).toEqual({ code: "IA_ERR_INTERNAL", message: "boom" });
    const original = new AgentError("IA_ERR_QUEUE_FULL", "full");
    expect(toAgentError(original)).toBe(original);
  });
});
