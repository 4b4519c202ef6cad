// Replaced at bundle time by deploy/build.mjs; from source it is read from package.json.
declare const __IAGENT_VERSION__: string | undefined;

export const VERSION: string =
  typeof __IAGENT_VERSION__ === "string"
    ? __IAGENT_VERSION__
    : (await import("../package.json", { with: { type: "json" } })).default.version;
