// Runs one of the project's Node scripts to its end as a user would, capturing its output. The child leads its
// own process group, so a timeout stops it and everything it started.
import { spawn } from "node:child_process";

export interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ScriptOptions {
  /** The child's whole environment (default: this process's). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

export function runScript(script: string, args: string[], options: ScriptOptions = {}): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(
      () => child.pid && process.kill(-child.pid, "SIGKILL"),
      options.timeoutMs ?? 120_000,
    );
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
