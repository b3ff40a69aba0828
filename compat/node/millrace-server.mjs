// Starts the real millrace binary on 127.0.0.1:0 for a node:test file (not itself a test file).
// Binary: $MILLRACE_BIN, default <repo>/target/debug/millrace.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, openSync, closeSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");
export const binary = process.env.MILLRACE_BIN || path.join(repoRoot, "target", "debug", "millrace");

export const CREDENTIALS = { accessKeyId: "AKIDMILLRACETEST", secretAccessKey: "millrace-test-secret" };

/** Starts `millrace serve` with `args` (throughput limits off unless `args` mentions them). */
export function startServer(args = [], label = "millrace-node-") {
  return new Promise((resolve, reject) => {
    if (!existsSync(binary)) {
      reject(new Error(`millrace binary not found at ${binary}; run cargo build -p millrace-cli or set MILLRACE_BIN`));
      return;
    }
    const baseDir = mkdtempSync(path.join(tmpdir(), label));
    const dataDir = path.join(baseDir, "data");
    const stderrLog = path.join(baseDir, "stderr.log");
    const errFd = openSync(stderrLog, "w");
    const fullArgs = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--create-stream-ms", "50"];
    if (!args.includes("--throughput-limits")) fullArgs.push("--throughput-limits", "off");
    fullArgs.push(...args);
    const proc = spawn(binary, fullArgs, { stdio: ["ignore", "pipe", errFd] });
    closeSync(errFd);
    let settled = false;
    let buffered = "";
    const server = {
      proc,
      baseDir,
      dataDir,
      stderrLog,
      endpoint: undefined,
      stderrTail(lines = 40) {
        try {
          return readFileSync(stderrLog, "utf8").split("\n").slice(-lines).join("\n");
        } catch {
          return "(no stderr log)";
        }
      },
      stop() {
        return new Promise((done) => {
          const cleanup = () => {
            rmSync(baseDir, { recursive: true, force: true });
            done();
          };
          if (proc.exitCode !== null || proc.signalCode !== null) return cleanup();
          const force = setTimeout(() => proc.kill("SIGKILL"), 10_000);
          proc.once("exit", () => {
            clearTimeout(force);
            cleanup();
          });
          proc.kill("SIGTERM");
        });
      },
    };
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn(value);
    };
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      settle(reject, new Error(`millrace did not print its listening line within 30 s (stderr: ${stderrLog})`));
    }, 30_000);
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (chunk) => {
      if (settled) return;
      buffered += chunk;
      const newline = buffered.indexOf("\n");
      if (newline < 0) return;
      const line = buffered.slice(0, newline).trim();
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
      if (m) {
        server.endpoint = m[1];
        settle(resolve, server);
      } else settle(reject, new Error(`unexpected first line from millrace: ${JSON.stringify(line)}`));
    });
    proc.on("exit", (code) => {
      settle(reject, new Error(`millrace exited with ${code} before listening (stderr: ${stderrLog})`));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
