// What the browser tests share: the real `tutti serve` on a free port with
// a fresh SQLite file, accounts made with the CLI, calls to the API, and
// Debian's Chromium.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { chromium } from "playwright-core";

export const here = dirname(fileURLToPath(import.meta.url));
export const bin = process.env.TUTTI_BIN ?? join(here, "..", "target", "debug", "tutti");
export const shots = join(here, "screenshots");
mkdirSync(shots, { recursive: true });

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/// A fresh store named `name`: its environment, and a way to make users
/// on it (returning their first token).
export function freshStore(name) {
  const db = `sqlite://${join(mkdtempSync(join(tmpdir(), "tutti-e2e-")), `${name}.db`)}`;
  const env = { ...process.env, TUTTI_DATABASE_URL: db, TUTTI_LOG: "warn" };
  const createUser = (user, role) => {
    const out = execFileSync(bin, ["user", "create", user, "--role", role], { env }).toString();
    return out.match(/^token: (\S+)$/m)[1];
  };
  return { env, createUser };
}

/// `tutti serve` on a free port over `env`'s store, once it answers: the
/// child process and its base URL.
export async function startServer(env) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(bin, ["serve", "--bind", `127.0.0.1:${port}`], { env, stdio: "inherit" });
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(base + "/healthz")).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  return { server, base };
}

/// An API caller for the server at `base`.
export function apiOf(base) {
  return async (method, path, token, body, contentType = "application/json") => {
    const r = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": contentType },
      body: body === undefined ? undefined : contentType === "application/json" ? JSON.stringify(body) : body,
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
}

/// Debian's Chromium, headless, with its calls home switched off.
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
  });
}
