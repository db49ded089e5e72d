// `npm start`: the whole pipeline locally. For now it starts the edge with local D1 and R2.
import { spawn } from "node:child_process";

const DATA_DIR = ".data";

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: "inherit" });
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}`)),
    );
  });
}

await run("wrangler", ["d1", "migrations", "apply", "DB", "--local", "--persist-to", DATA_DIR]);
const edge = spawn("wrangler", ["dev", "--persist-to", DATA_DIR, "--port", "8787"], { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => edge.kill(signal));
}
edge.on("exit", (code) => process.exit(code ?? 0));
