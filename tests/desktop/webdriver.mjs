// The WebDriver plumbing the desktop test and benchmark share: tauri-driver in front of
// WebKitWebDriver, one session on the real CallPop binary. Plain HTTP, no npm packages.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns something truthy. */
export async function until(what, fn, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/** The app's environment: its own HOME and XDG dirs under `home`, so logs, autostart entries
 * and caches stay there. */
export function isolatedEnv(home, extra = {}) {
  return {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, "config"),
    XDG_DATA_HOME: path.join(home, "share"),
    XDG_CACHE_HOME: path.join(home, "cache"),
    ...extra,
  };
}

/** A WebDriver session on the CallPop desktop binary. */
export class Desktop {
  static async launch({ binary, args, env }) {
    const port = await freePort();
    const nativePort = await freePort();
    const driver = spawn("tauri-driver", ["--port", String(port), "--native-port", String(nativePort)], {
      env,
      stdio: ["ignore", "inherit", "inherit"],
    });
    const desktop = new Desktop(port, driver);
    desktop.appCommand = [path.resolve(binary), ...args];
    await until("tauri-driver", async () => (await fetch(`http://127.0.0.1:${port}/status`)).ok);
    const created = await desktop.wd("POST", "/session", {
      capabilities: { alwaysMatch: { browserName: "wry", "tauri:options": { application: binary, args } } },
    });
    desktop.session = created.sessionId;
    return desktop;
  }

  constructor(port, driver) {
    this.port = port;
    this.driver = driver;
    this.session = null;
    this.appCommand = null;
  }

  /** Processes running exactly this session's app command line. */
  appPids() {
    if (!this.appCommand) return [];
    const wanted = this.appCommand.join("\0");
    const pids = [];
    for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      try {
        const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0$/, "");
        if (cmdline === wanted) pids.push(Number(pid));
      } catch {
        // Gone meanwhile.
      }
    }
    return pids;
  }

  async wd(method, url, body) {
    const res = await fetch(`http://127.0.0.1:${this.port}${url}`, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json.value ?? json)}`);
    return json.value;
  }

  s(p) {
    return `/session/${this.session}${p}`;
  }

  /** Runs `script` in the window and returns its value. */
  exec(script, args = []) {
    return this.wd("POST", this.s("/execute/sync"), { script, args });
  }

  /** Text of the first element matching `css`, or null. */
  textOf(css) {
    return this.exec("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", [css]);
  }

  /** A real WebDriver click on the first element matching `css`. */
  async click(css) {
    const v = await this.wd("POST", this.s("/element"), { using: "css selector", value: css });
    await this.wd("POST", this.s(`/element/${Object.values(v)[0]}/click`), {});
  }

  /** Calls a Tauri command the way the window does; returns `{ value, ms }`. */
  async invokeTimed(cmd, args = {}) {
    const r = await this.wd("POST", this.s("/execute/async"), {
      script: "const [cmd, args, done] = arguments; const t = performance.now(); window.__TAURI_INTERNALS__.invoke(cmd, args).then((v) => done({ ok: v, ms: performance.now() - t }), (e) => done({ err: String(e) }));",
      args: [cmd, args],
    });
    if ("err" in r) throw new Error(`${cmd}: ${r.err}`);
    return { value: r.ok, ms: r.ms };
  }

  async invoke(cmd, args = {}) {
    return (await this.invokeTimed(cmd, args)).value;
  }

  /** Saves a PNG of the window once WebKit has painted what the DOM says. WebKitGTK's
   * snapshot waits for the next painted frame, and a window where nothing changes (no
   * animation runs: as it should be) paints none: a 1-pixel, all but transparent element is
   * changed every frame while the snapshot is taken. */
  async screenshot(file) {
    await this.wd("POST", this.s("/execute/async"), {
      script: `const done = arguments[0];
        const dot = document.createElement("div");
        Object.assign(dot.style, { position: "fixed", left: "0", bottom: "0", width: "1px", height: "1px", background: "#000", opacity: "0.004", pointerEvents: "none" });
        document.body.append(dot);
        let n = 0;
        const tick = () => { dot.style.opacity = n++ % 2 ? "0.004" : "0.005"; if (n < 240) requestAnimationFrame(tick); else dot.remove(); };
        requestAnimationFrame(tick);
        setTimeout(done, 400);`,
      args: [],
    });
    const png = await this.wd("GET", this.s("/screenshot"));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.from(png, "base64"));
  }

  /** Ends the session and stops tauri-driver, then makes sure the app is gone: ending the
   * session only closes its window, which CallPop hides to the tray, and an app left running
   * holds the test runner's output pipes open so the runner never exits. */
  async close() {
    if (this.session) await this.wd("DELETE", this.s("")).catch(() => {});
    this.session = null;
    this.driver.kill("SIGTERM");
    await sleep(300);
    for (const signal of ["SIGTERM", "SIGKILL"]) {
      for (const pid of this.appPids()) {
        try {
          process.kill(pid, signal);
        } catch {
          // Already gone.
        }
      }
      await until("the app to exit", async () => this.appPids().length === 0, 5000).catch(() => {});
    }
  }
}
