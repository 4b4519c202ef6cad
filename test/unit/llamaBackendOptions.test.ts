import { describe, expect, it } from "vitest";
import { llamaBackendOptions } from "../../agent/engine/llamaRuntimeOptions.js";

// --gpu, --gpu-layers and --numa as node-llama-cpp 3.21.1 takes them (getLlama's `gpu` and
// `numa`, loadModel's `gpuLayers`). No GPU build runs on the dev VM: this mapping is what is tested.
describe("llamaBackendOptions", () => {
  it("defaults to CPU only, no layers offloaded, no NUMA policy", () => {
    expect(llamaBackendOptions({})).toEqual({ gpu: false, gpuLayers: 0, numa: false });
  });

  it("--gpu off offloads nothing whatever --gpu-layers says", () => {
    expect(llamaBackendOptions({ gpu: "off", gpuLayers: 20 })).toEqual({ gpu: false, gpuLayers: 0, numa: false });
  });

  it("--gpu auto lets node-llama-cpp pick the GPU and fit the layers, or takes the count given", () => {
    expect(llamaBackendOptions({ gpu: "auto" })).toEqual({ gpu: "auto", gpuLayers: "auto", numa: false });
    expect(llamaBackendOptions({ gpu: "auto", gpuLayers: "auto" })).toMatchObject({ gpuLayers: "auto" });
    expect(llamaBackendOptions({ gpu: "auto", gpuLayers: 12 })).toMatchObject({ gpu: "auto", gpuLayers: 12 });
    expect(llamaBackendOptions({ gpu: "auto", gpuLayers: 0 })).toMatchObject({ gpuLayers: 0 });
  });

  it("passes --numa distribute and isolate through; off is no policy", () => {
    expect(llamaBackendOptions({ numa: "distribute" }).numa).toBe("distribute");
    expect(llamaBackendOptions({ numa: "isolate" }).numa).toBe("isolate");
    expect(llamaBackendOptions({ numa: "off" }).numa).toBe(false);
  });
});
