// Test harness: a tiny static server for ui/dist (with the app's production CSP), Debian's
// Chromium through playwright-core, and the mock IPC injected before page scripts.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { before, after } from "node:test";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const DIST = path.resolve(here, "..", "dist");
export const SHOTS = path.resolve(here, "screenshots");
export const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src ipc: http://ipc.localhost";
const MOCK = fs.readFileSync(path.join(here, "mock-ipc.js"), "utf8");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

/** 2026-11-23 10:30:00 in Los Angeles: fixed so dates, "today" and screenshots are stable. */
export const NOW = Date.parse("2026-11-23T18:30:00Z");
export const TZ = "America/Los_Angeles";

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon", ".json": "application/json", ".woff2": "font/woff2" };

export function startServer() {
  if (!fs.existsSync(path.join(DIST, "index.html"))) throw new Error("ui/dist is missing: run `npm run build` first");
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    let rel = decodeURIComponent(url.pathname);
    if (rel === "/" || !path.extname(rel)) rel = "/index.html";
    const file = path.resolve(DIST, "." + rel);
    if (!file.startsWith(DIST + path.sep) || !fs.existsSync(file)) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream", "content-security-policy": CSP, "cache-control": "no-store" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

export async function launch() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}. Install it with: apt-get install -y --no-install-recommends chromium`);
  }
  // playwright-core gives every launch a fresh temporary profile (user-data dir) and removes it on close.
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--font-render-hinting=none"],
  });
}

/**
 * Opens the app with the mock IPC. Returns the page plus collectors for page errors, console
 * errors and CSP violations (each test asserts they stay empty through `assertClean`).
 */
export async function openApp(browser, baseUrl, opts = {}) {
  const context = await browser.newContext({
    viewport: opts.viewport ?? { width: 1100, height: 720 },
    colorScheme: opts.colorScheme ?? "light",
    timezoneId: TZ,
    locale: "en-US",
    reducedMotion: opts.reducedMotion ?? "reduce",
    deviceScaleFactor: opts.deviceScaleFactor ?? 1,
  });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl.replace(/\/$/, "") });
  const page = await context.newPage();
  const problems = { pageErrors: [], consoleErrors: [], csp: [] };
  page.on("pageerror", (e) => problems.pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") problems.consoleErrors.push(m.text());
  });
  await page.clock.setFixedTime(NOW);
  const config = { now: NOW, latency: 2, ...(opts.mock ?? {}) };
  await page.addInitScript(`window.__MOCK_CONFIG__ = ${JSON.stringify(config)};`);
  await page.addInitScript(`window.__cspViolations = []; document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || "")));`);
  await page.addInitScript(MOCK);
  await page.goto(baseUrl);
  if (opts.waitForRows !== false) await page.waitForSelector(".row[data-call-id]");
  return {
    page,
    context,
    problems,
    async close() {
      await context.close();
    },
  };
}

export async function assertClean(app, assert) {
  const csp = await app.page.evaluate(() => window.__cspViolations).catch(() => []);
  assert.deepEqual(csp, [], "no CSP violations");
  assert.deepEqual(app.problems.pageErrors, [], "no uncaught page errors");
  assert.deepEqual(app.problems.consoleErrors.filter((t) => !t.includes("favicon")), [], "no console errors");
  const xss = await app.page.evaluate(() => window.__xss ?? null);
  assert.equal(xss, null, "no markup from call data was executed");
}

export async function screenshot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** Text of the rendered (visible) rows, top to bottom. */
export async function visibleRows(page) {
  return page.$$eval(".row[data-call-id]:not([hidden])", (rows) =>
    rows
      .map((r) => ({ id: Number(r.dataset.callId), y: new DOMMatrixReadOnly(getComputedStyle(r).transform).m42, name: r.querySelector(".who-name")?.textContent ?? "", number: r.querySelector(".who-number")?.textContent ?? "", badge: r.querySelector(".badge")?.textContent ?? "", cls: r.className }))
      .sort((a, b) => a.y - b.y),
  );
}

/** Waits until the list reflects the latest query (not busy). */
export async function settled(page) {
  await page.waitForFunction(() => document.querySelector(".list-wrap")?.getAttribute("aria-busy") !== "true" && document.querySelector(".list-viewport")?.getAttribute("aria-busy") !== "true");
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/**
 * One static server and one browser for a whole test file. `open(opts)` gives a fresh page of
 * the app; `withApp(opts, fn)` runs `fn(page, app)` on one and checks it stayed clean (no
 * console errors, no CSP violations).
 */
export function appSuite(assert) {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });
  const open = (opts = {}) => openApp(browser, server.url, opts);
  async function withApp(opts, fn) {
    const app = await open(opts);
    try {
      await fn(app.page, app);
      await assertClean(app, assert);
    } finally {
      await app.close();
    }
  }
  return { open, withApp };
}
