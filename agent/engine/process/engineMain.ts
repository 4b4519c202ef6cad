import { installLastResortHandlers } from "../../../common/lastResort.js";
import { serveEngine } from "./engineWorker.js";

/**
 * The engine process's entry: llama.cpp served over IPC until the agent disconnects.
 * engineProcess.ts forks this file under tsx when the agent runs from a checkout, so an edit
 * to the engine is live without a build. The release is one bundle, so there the agent forks
 * the bundle with INSTRUMENT_AGENT_ENGINE_CHILD=1 and main.ts imports this module.
 */

// The engine writes to the agent's stderr: an error that escapes ends it with one line, and
// the agent reports IA_ERR_ENGINE_EXITED.
installLastResortHandlers();

await serveEngine();
