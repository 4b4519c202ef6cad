import path from "node:path";

/**
 * How the person runs this agent, for advice that names a command: `npm start --` from a
 * checkout (agent/main.ts under tsx), `node dist/instrument-agent.mjs` for the bundle in a
 * checkout, and the launcher `instrument-agent` of a release pack or an install. A newcomer
 * copies the command as printed, so it has to be one that exists where they are.
 */
export function selfCommand(script = process.argv[1] ?? ""): string {
  const file = path.basename(script);
  if (file === "main.ts" && path.basename(path.dirname(script)) === "agent") return "npm start --";
  if (file === "instrument-agent.mjs" && path.basename(path.dirname(script)) === "dist") return "node dist/instrument-agent.mjs";
  return "instrument-agent";
}
