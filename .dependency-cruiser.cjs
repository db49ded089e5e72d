// The layers of docs/architecture.md#layers, checked in .ci/run by `npm run deps:check`.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      severity: "error",
      comment: "An import cycle ties two modules into one; break it by moving the shared part down a layer.",
      from: {},
      to: { circular: true },
    },
    {
      name: "src-imports-nothing-of-ours",
      severity: "error",
      comment: "src/ is the runtime-agnostic core: it imports only src/ and packages.",
      from: { path: "^src/" },
      to: { path: "^(workers|gpu-runner|cli|scripts|test)/" },
    },
    {
      name: "edge-not-runner",
      severity: "error",
      comment: "The edge and the runner share only src/.",
      from: { path: "^workers/" },
      to: { path: "^(gpu-runner|cli|scripts|test)/" },
    },
    {
      name: "runner-not-edge",
      severity: "error",
      comment: "The runner and the edge share only src/.",
      from: { path: "^gpu-runner/" },
      to: { path: "^(workers|scripts|test)/" },
    },
    {
      name: "cli-is-a-library",
      severity: "error",
      comment: "cli/ serves the command-line programs; it needs only src/.",
      from: { path: "^cli/" },
      to: { path: "^(workers|gpu-runner|scripts|test)/" },
    },
    {
      name: "engine-below-serving-and-training",
      severity: "error",
      comment: "The engine is used by serving and by training, never the other way.",
      from: { path: "^gpu-runner/engine/" },
      to: { path: "^gpu-runner/(serving|training)/" },
    },
    {
      name: "serving-not-training",
      severity: "error",
      comment: "Serving and training share the engine, not each other.",
      from: { path: "^gpu-runner/serving/" },
      to: { path: "^gpu-runner/training/" },
    },
    {
      name: "training-not-serving",
      severity: "error",
      comment: "Serving and training share the engine, not each other.",
      from: { path: "^gpu-runner/training/" },
      to: { path: "^gpu-runner/serving/" },
    },
    {
      name: "stores-not-caches",
      severity: "error",
      comment: "Caches wrap stores; a store never reaches for a cache.",
      from: { path: "^workers/edge/.+-store\\.ts$" },
      to: { path: "^workers/edge/.+-cache\\.ts$" },
    },
    {
      name: "scripts-not-tests",
      severity: "error",
      comment: "Programs people run do not depend on the tests.",
      from: { path: "^(scripts|cli|gpu-runner|workers|src)/" },
      to: { path: "^test/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)(node_modules|\\.wrangler|\\.data|test/fixtures)/" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: [".ts", ".tsx", ".js", ".cjs", ".mjs", ".json"] },
  },
};
