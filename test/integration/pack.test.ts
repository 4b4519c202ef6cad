import { execFileSync } from "node:child_process";
import { chmodSync, closeSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { synthModel, tempDir } from "../helpers/models.js";
import { packRelease, requireTool, runCommand } from "../helpers/packRelease.js";
import type { PackedRelease } from "../helpers/packRelease.js";

// The release packs as a technician receives them: archives listed and unpacked, the
// checksums verified, and the launcher's Node check run against a fake old Node.
const out = tempDir("iagent-pack-");
let linux: PackedRelease;
let win: PackedRelease;
let model: string;

beforeAll(async () => {
  requireTool("zip", "apt-get install -y zip");
  requireTool("unzip", "apt-get install -y unzip");
  model = await synthModel(tempDir("iagent-pack-model-"));
  linux = packRelease("linux-x64", out, ["--model", model]);
  win = packRelease("win-x64", out);
}, 240_000);

function listTar(archive: string): string[] {
  return execFileSync("tar", ["-tzf", archive], { encoding: "utf8", maxBuffer: 64 << 20 })
    .trim()
    .split("\n");
}

function listZip(archive: string): string[] {
  return execFileSync("unzip", ["-Z1", archive], { encoding: "utf8", maxBuffer: 64 << 20 })
    .trim()
    .split("\n");
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

function magic(file: string): string {
  const head = Buffer.alloc(4);
  const fd = openSync(file, "r");
  readSync(fd, head, 0, 4, 0);
  closeSync(fd);
  return head.toString("latin1");
}

describe("npm run pack", () => {
  it("prints the size of each folder and archive", () => {
    expect(linux.output).toMatch(/linux-x64\.tar\.gz: \d+\.\d MB/);
    expect(win.output).toMatch(/win-x64\.zip: \d+\.\d MB/);
  });

  it("the linux-x64 archive holds the bundle, launchers, service files, Linux binaries only and the model", () => {
    const files = listTar(linux.archive).map((f) => f.replace(/^[^/]+\//, ""));
    for (const wanted of [
      "instrument-agent",
      "instrument-agent.cmd",
      "instrument-agent.mjs",
      "instrument-agent.example.yaml",
      "instrument-agent.service",
      "install.sh",
      "SHA256SUMS",
      "node_modules/node-llama-cpp/package.json",
      "node_modules/node-llama-cpp/llama/gitRelease.bundle",
      "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node",
      "node_modules/@serialport/bindings-cpp/prebuilds/linux-x64/@serialport+bindings-cpp.glibc.node",
      `models-data/${path.basename(model)}`,
    ]) {
      expect(files, wanted).toContain(wanted);
    }
    expect(files.filter((f) => /\.(dll|exe)$/.test(f) || f.includes("prebuilds/win32") || f.includes("/win-x64/"))).toEqual([]);
    const prebuilt = new Set(
      files
        .filter((f) => f.startsWith("node_modules/@node-llama-cpp/"))
        .map((f) => f.split("/")[2])
        .filter(Boolean),
    );
    expect([...prebuilt]).toEqual(["linux-x64"]);
  });

  it("the win-x64 archive holds the Windows llama-addon.node, serialport's win32-x64 prebuild, the .cmd launcher and the service script, and no Linux binaries", () => {
    const files = listZip(win.archive).map((f) => f.replace(/^[^/]+\//, ""));
    for (const wanted of [
      "instrument-agent.cmd",
      "instrument-agent.mjs",
      "install-service.ps1",
      "SHA256SUMS",
      "node_modules/@node-llama-cpp/win-x64/bins/win-x64/llama-addon.node",
      "node_modules/@node-llama-cpp/win-x64/bins/win-x64/ggml-cpu-x64.dll",
      "node_modules/@serialport/bindings-cpp/prebuilds/win32-x64/@serialport+bindings-cpp.node",
    ]) {
      expect(files, wanted).toContain(wanted);
    }
    expect(files.filter((f) => /\.so(\.\d+)*$/.test(f) || f.includes("prebuilds/linux") || f.includes("/linux-x64/"))).toEqual([]);
    const unpacked = tempDir("iagent-pack-win-");
    execFileSync("unzip", ["-q", win.archive, "-d", unpacked]);
    const binaries = walk(unpacked).filter((f) => /\.(node|dll)$/.test(f));
    expect(binaries.length).toBeGreaterThan(10);
    expect(binaries.filter((f) => !magic(f).startsWith("MZ"))).toEqual([]);
    expect(walk(unpacked).filter((f) => magic(f) === "\x7fELF")).toEqual([]);
    expect(readFileSync(path.join(unpacked, path.basename(win.folder), "instrument-agent.cmd"), "latin1")).toContain("\r\n");
  });

  it("SHA256SUMS covers every file and verifies after unpacking", async () => {
    const unpacked = tempDir("iagent-pack-linux-");
    execFileSync("tar", ["-xzf", linux.archive, "-C", unpacked]);
    const folder = path.join(unpacked, path.basename(linux.folder));
    const sums = readFileSync(path.join(folder, "SHA256SUMS"), "utf8").trim().split("\n");
    expect(sums.length).toBe(walk(folder).length - 1);
    expect(sums.some((line) => line.endsWith(`  models-data/${path.basename(model)}`))).toBe(true);
    const check = await runCommand("sha256sum", ["--quiet", "-c", "SHA256SUMS"], { cwd: folder });
    expect(check.stdout + check.stderr).toBe("");
    expect(check.code).toBe(0);
    writeFileSync(path.join(folder, "instrument-agent.example.yaml"), "tampered\n");
    const tampered = await runCommand("sha256sum", ["--quiet", "-c", "SHA256SUMS"], { cwd: folder });
    expect(tampered.code).not.toBe(0);
    expect(tampered.stdout).toContain("instrument-agent.example.yaml: FAILED");
  });

  it("the launcher says which Node is needed when the one it finds is too old", async () => {
    const fakeDir = tempDir("iagent-pack-fake-node-");
    const fake = path.join(fakeDir, "node");
    writeFileSync(fake, '#!/bin/sh\ncase "$1" in -p) echo 18 ;; --version) echo v18.19.0 ;; esac\n');
    chmodSync(fake, 0o755);
    const old = await runCommand(path.join(linux.folder, "instrument-agent"), ["--version"], { env: { PATH: `${fakeDir}:/usr/bin:/bin` } });
    expect(old.code).toBe(1);
    expect(old.stderr).toContain("Node.js 20 or newer is needed");
    expect(old.stderr).toContain("v18.19.0");
    const missing = await runCommand(path.join(linux.folder, "instrument-agent"), ["--version"], {
      env: { PATH: "/nonexistent", IAGENT_NODE: "no-such-node" },
    });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("Node.js 20 or newer is needed");
    const real = await runCommand(path.join(linux.folder, "instrument-agent"), ["--version"], {
      env: { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin` },
    });
    expect(real.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(real.code).toBe(0);
  });

  it("refuses an unknown target with exit 2", async () => {
    const result = await runCommand(process.execPath, ["deploy/pack.mjs", "--target", "mac-arm64", "--skip-build", "--out", out], {
      cwd: path.resolve(import.meta.dirname, "..", ".."),
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--target: expected one of linux-x64, win-x64");
    expect(readdirSync(out).filter((f) => f.includes("mac-arm64"))).toEqual([]);
  });
});
