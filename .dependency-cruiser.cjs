// The import rule (docs/ARCHITECTURE.md, "Who may import whom"). `npm test` runs it through
// `npm run lint:imports`; a violating import fails the suite with the rule's name.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "common-is-a-leaf",
      comment: "common/ is the leaf layer every folder may use; it imports nothing of ours outside common/.",
      severity: "error",
      from: { path: "^common/" },
      to: { path: "^(agent|models|firmware-bridge|deploy|test)/" },
    },
    {
      name: "models-and-bridge-stand-alone",
      comment: "models/ and firmware-bridge/ are libraries the agent uses; they never import the agent.",
      severity: "error",
      from: { path: "^(models|firmware-bridge)/" },
      to: { path: "^agent/" },
    },
    {
      name: "only-the-engine-imports-node-llama-cpp",
      comment:
        "agent/engine/ owns llama.cpp. models/modelDownload.ts is the one other user: node-llama-cpp's downloader, no native code.",
      severity: "error",
      from: { pathNot: "^(agent/engine/|models/modelDownload\\.ts$)" },
      to: { path: "node_modules/node-llama-cpp/" },
    },
    {
      name: "only-the-mqtt-folder-imports-mqtt-and-aedes",
      severity: "error",
      from: { pathNot: "^agent/transports/mqtt/" },
      to: { path: "node_modules/(mqtt|aedes)/" },
    },
    {
      name: "only-the-serial-link-imports-serialport",
      severity: "error",
      from: { pathNot: "^common/serial/" },
      to: { path: "node_modules/(serialport|@serialport/[^/]+)/" },
    },
    {
      name: "only-the-mcp-folder-imports-the-mcp-sdk",
      comment: "agent/transports/mcp/ owns the MCP SDK (stdio and streamable HTTP); the HTTP server mounts its handler through registry.ts.",
      severity: "error",
      from: { pathNot: "^agent/transports/mcp/" },
      to: { path: "node_modules/@modelcontextprotocol/sdk/" },
    },
    {
      name: "transports-never-import-each-other",
      comment: "Each folder under agent/transports/ is one transport; what they share lives in agent/console/ or agent/service/.",
      severity: "error",
      from: { path: "^agent/transports/([^/]+)/" },
      to: { path: "^agent/transports/", pathNot: ["^agent/transports/$1/", "^agent/transports/transport\\.ts$"] },
    },
    {
      name: "no-circular",
      comment: "An import cycle means two modules are one; cut it or merge them.",
      severity: "error",
      from: { path: "^(agent|common|models|firmware-bridge)/" },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
    exclude: { path: "^(dist|release)/" },
  },
};
