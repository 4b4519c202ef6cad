// npm run pack -- --target linux-x64|win-x64 [--model <file>] [--out <dir>]
//
// Writes release/instrument-agent-<version>-<target>/ and beside it a .tar.gz (linux) or
// .zip (windows): the bundle, launchers, a minimal node_modules (node-llama-cpp with its
// runtime dependency closure and only the target's prebuilt binaries, serialport's native
// binding with only the target's prebuild), a config example, service files, SHA256SUMS
// and optionally a model. Offline: the Windows prebuilt package, which npm does not install
// on Linux, is fetched once with `npm pack` into a cache and reused.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  closeSync,
  cpSync,
  openSync,
  readSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const here = path.join(root, "deploy");

const TARGETS = {
  "linux-x64": {
    llamaPrebuilt: "@node-llama-cpp/linux-x64",
    serialPrebuild: "linux-x64",
    archive: "tar.gz",
    files: [
      ["linux/instrument-agent.service", "instrument-agent.service"],
      ["linux/install.sh", "install.sh", 0o755],
      ["linux/INSTALL.txt", "INSTALL.txt"],
    ],
    // Binaries of the other OS, refused if any slipped in.
    foreign: (file, head) =>
      file.endsWith(".dll") || file.endsWith(".exe") || (file.endsWith(".node") && head.subarray(0, 2).toString("latin1") === "MZ"),
  },
  "win-x64": {
    llamaPrebuilt: "@node-llama-cpp/win-x64",
    serialPrebuild: "win32-x64",
    archive: "zip",
    files: [
      ["windows/install-service.ps1", "install-service.ps1"],
      ["windows/INSTALL.txt", "INSTALL.txt"],
    ],
    foreign: (file, head) => /\.so(\.\d+)*$/.test(file) || head.subarray(0, 4).toString("latin1") === "\x7fELF",
  },
};

function fail(message) {
  console.error(`pack: ${message}`);
  process.exit(2);
}

const { values: args } = parseArgs({
  options: { target: { type: "string" }, model: { type: "string" }, out: { type: "string" }, "skip-build": { type: "boolean" } },
});
const target = TARGETS[args.target ?? ""];
if (!target) fail(`--target: expected one of ${Object.keys(TARGETS).join(", ")}, got ${JSON.stringify(args.target)}`);
if (args.model !== undefined && !statSync(args.model, { throwIfNoEntry: false })?.isFile()) fail(`--model: ${args.model} is not a file`);

const { version } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
const outRoot = path.resolve(args.out ?? path.join(root, "release"));
const name = `instrument-agent-${version}-${args.target}`;
const dest = path.join(outRoot, name);
const modules = path.join(dest, "node_modules");

if (!args["skip-build"]) execFileSync(process.execPath, [path.join(here, "build.mjs")], { stdio: "inherit" });
rmSync(dest, { recursive: true, force: true });
mkdirSync(modules, { recursive: true });

// --- the bundle and launchers
cpSync(path.join(root, "dist", "instrument-agent.mjs"), path.join(dest, "instrument-agent.mjs"));
writeFileSync(
  path.join(dest, "package.json"),
  `${JSON.stringify({ name: "instrument-agent", version, private: true, type: "module", engines: { node: ">=20" } }, null, 2)}\n`,
);
cpSync(path.join(here, "launchers", "instrument-agent.sh"), path.join(dest, "instrument-agent"));
chmodSync(path.join(dest, "instrument-agent"), 0o755);
// Windows files get CRLF line ends: cmd.exe misreads labels in LF-only batch files.
const crlf = (from, to) => writeFileSync(to, readFileSync(from, "utf8").replace(/\r?\n/g, "\r\n"));
crlf(path.join(here, "launchers", "instrument-agent.cmd"), path.join(dest, "instrument-agent.cmd"));
cpSync(path.join(here, "instrument-agent.example.yaml"), path.join(dest, "instrument-agent.example.yaml"));
for (const [from, to, mode] of target.files) {
  if (args.target === "win-x64") crlf(path.join(here, from), path.join(dest, to));
  else cpSync(path.join(here, from), path.join(dest, to));
  if (mode) chmodSync(path.join(dest, to), mode);
}

// --- node_modules: the runtime dependency closure, as npm laid it out here
const skipInPackage = (pkgDir) => (source) => {
  const rel = path.relative(pkgDir, source);
  if (rel === "") return true;
  const parts = rel.split(path.sep);
  if (parts[0] === "node_modules") return false; // nested packages are copied as their own entries
  if (/\.(map|d\.ts|d\.mts|d\.cts)$/.test(rel)) return false;
  return true;
};

function findPackage(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name);
    if (existsSync(path.join(candidate, "package.json"))) return candidate;
    if (dir === root || path.dirname(dir) === dir) return null;
  }
}

const copied = new Set();
function copyClosure(name, fromDir, extraSkip = () => false) {
  const pkgDir = findPackage(name, fromDir);
  if (!pkgDir) fail(`${name} (needed from ${path.relative(root, fromDir) || "."}) is not in node_modules: run npm ci first`);
  if (copied.has(pkgDir)) return;
  copied.add(pkgDir);
  const skip = skipInPackage(pkgDir);
  cpSync(pkgDir, path.join(dest, path.relative(root, pkgDir)), {
    recursive: true,
    filter: (source) => skip(source) && !extraSkip(path.relative(pkgDir, source)),
  });
  const manifest = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8"));
  for (const dep of Object.keys(manifest.dependencies ?? {})) copyClosure(dep, pkgDir);
}

const llamaPkg = JSON.parse(readFileSync(path.join(root, "node_modules", "node-llama-cpp", "package.json"), "utf8"));
copyClosure("node-llama-cpp", root, (rel) => {
  if (rel === path.join("llama", "localBuilds") || rel === path.join("llama", "lastBuild.json") || rel === path.join("llama", "llama.cpp"))
    return true;
  // The llama.cpp source serves a local build on old-glibc Linux; Windows 10+ loads the prebuilts.
  return args.target === "win-x64" && rel === path.join("llama", "gitRelease.bundle");
});
// The local build (`cli.js source download`) runs `npm run cmake-js-llama`, which finds
// cmake-js only through node_modules/.bin, as npm would have linked it.
if (args.target === "linux-x64") {
  mkdirSync(path.join(modules, ".bin"), { recursive: true });
  symlinkSync(path.join("..", "cmake-js", "bin", "cmake-js"), path.join(modules, ".bin", "cmake-js"));
  // node-llama-cpp asks for CMake 3.19, but its Linux CPU build needs only what llama.cpp
  // needs (3.14): accept the CMake of Debian 11 (3.18) and Ubuntu 20.04 (3.16). The range
  // keeps 3.19's policies on newer CMake.
  const lists = path.join(modules, "node-llama-cpp", "llama", "CMakeLists.txt");
  const text = readFileSync(lists, "utf8");
  if (!text.startsWith("cmake_minimum_required(VERSION 3.19)")) fail(`${lists}: expected cmake_minimum_required(VERSION 3.19) on line 1`);
  writeFileSync(lists, text.replace("cmake_minimum_required(VERSION 3.19)", "cmake_minimum_required(VERSION 3.16...3.19)"));
}
copyClosure("@serialport/bindings-cpp", root, (rel) => {
  const parts = rel.split(path.sep);
  if (parts[0] === "build" || parts[0] === "src" || rel === "binding.gyp") return true;
  return parts[0] === "prebuilds" && parts.length > 1 && parts[1] !== target.serialPrebuild;
});
if (!existsSync(path.join(modules, "@serialport", "bindings-cpp", "prebuilds", target.serialPrebuild)))
  fail(`serialport has no ${target.serialPrebuild} prebuild`);

// --- the target's prebuilt llama.cpp package, and nothing of the other platforms
const prebuiltDest = path.join(modules, ...target.llamaPrebuilt.split("/"));
const localPrebuilt = path.join(root, "node_modules", ...target.llamaPrebuilt.split("/"));
const localVersion = existsSync(path.join(localPrebuilt, "package.json"))
  ? JSON.parse(readFileSync(path.join(localPrebuilt, "package.json"), "utf8")).version
  : null;
if (localVersion === llamaPkg.version) {
  cpSync(localPrebuilt, prebuiltDest, { recursive: true, filter: skipInPackage(localPrebuilt) });
} else {
  const tarball = fetchPrebuilt(target.llamaPrebuilt, llamaPkg.version);
  mkdirSync(prebuiltDest, { recursive: true });
  execFileSync("tar", ["-xzf", tarball, "-C", prebuiltDest, "--strip-components=1"]);
}
const addon = path.join(prebuiltDest, "bins", args.target, "llama-addon.node");
if (!existsSync(addon)) fail(`${target.llamaPrebuilt} has no bins/${args.target}/llama-addon.node`);

/** `npm pack` once into the cache, then reuse: the pack itself is made offline. */
function fetchPrebuilt(pkg, pkgVersion) {
  const cache = path.resolve(process.env.IAGENT_PACK_CACHE ?? path.join(root, "release", ".cache"));
  mkdirSync(cache, { recursive: true });
  const file = path.join(cache, `${pkg.replace("@", "").replace("/", "-")}-${pkgVersion}.tgz`);
  if (!existsSync(file)) {
    console.log(`fetching ${pkg}@${pkgVersion} into ${path.relative(process.cwd(), cache)} (once)`);
    const out = execFileSync("npm", ["pack", `${pkg}@${pkgVersion}`, "--pack-destination", cache, "--silent"], { encoding: "utf8" })
      .trim()
      .split("\n")
      .pop();
    const packed = path.join(cache, out);
    if (packed !== file) cpSync(packed, file);
    if (packed !== file) rmSync(packed);
  }
  return file;
}

// --- an optional model, with its checksum
let modelNote = "";
if (args.model) {
  const modelDir = path.join(dest, "models-data");
  mkdirSync(modelDir, { recursive: true });
  cpSync(args.model, path.join(modelDir, path.basename(args.model)));
  modelNote = ` (with models-data/${path.basename(args.model)})`;
}

// --- refuse binaries of the other OS
const listing = walk(dest);
const foreign = listing.filter((file) => {
  const head = Buffer.alloc(4);
  const fd = openSync(path.join(dest, file), "r");
  readSync(fd, head, 0, 4, 0);
  closeSync(fd);
  return target.foreign(file, head);
});
if (foreign.length) fail(`binaries of another OS in the ${args.target} pack: ${foreign.slice(0, 5).join(", ")}`);

// --- SHA256SUMS (sha256sum -c format; forward slashes on every OS)
const sums = listing.map(
  (file) =>
    `${createHash("sha256")
      .update(readFileSync(path.join(dest, file)))
      .digest("hex")}  ${file.split(path.sep).join("/")}`,
);
writeFileSync(path.join(dest, "SHA256SUMS"), `${sums.join("\n")}\n`);

// --- the archive
const archive = path.join(outRoot, `${name}.${target.archive}`);
rmSync(archive, { force: true });
if (target.archive === "tar.gz") execFileSync("tar", ["-czf", archive, "--owner=0", "--group=0", "-C", outRoot, name]);
else {
  try {
    execFileSync("zip", ["-q", "-r", "-X", archive, name], { cwd: outRoot });
  } catch (error) {
    fail(`zip failed (${error.message}); install it: apt-get install -y zip`);
  }
}

const folderBytes = listing.reduce((sum, file) => sum + statSync(path.join(dest, file)).size, 0);
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
console.log(`${path.relative(process.cwd(), dest)}/: ${listing.length + 1} files, ${mb(folderBytes)}${modelNote}`);
console.log(`${path.relative(process.cwd(), archive)}: ${mb(statSync(archive).size)}`);

function walk(dir, prefix = "") {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? path.join(prefix, entry.name) : entry.name;
    if (entry.isDirectory()) files.push(...walk(path.join(dir, entry.name), rel));
    else if (entry.isFile()) files.push(rel);
  }
  return files.sort();
}
