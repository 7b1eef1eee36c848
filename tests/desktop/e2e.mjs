// The real desktop app, end to end: started by WebKitWebDriver (through tauri-driver) on the
// Xvfb display and D-Bus session `tests/desktop/run` provides. A webhook posted to the app's
// own receiver must appear in the window's call log and change live; the tray must register;
// a second launch must hand over to the first. With CALLPOP_SCREENSHOTS=DIR the window is
// captured (log, settings, health) into DIR.
//
// No npm packages: WebDriver is plain HTTP.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { Desktop, freePort, isolatedEnv, until } from "./webdriver.mjs";

const root = path.resolve(import.meta.dirname, "../..");
const appBinary = process.env.CALLPOP_DESKTOP_BIN ?? path.join(root, "target/debug/callpop-desktop");
const cliBinary = process.env.CALLPOP_BIN ?? path.join(root, "target/debug/callpop");
const shots = process.env.CALLPOP_SCREENSHOTS ?? "";
const RO_TOKEN = "desktop-e2e-ringotel-token";

const home = fs.mkdtempSync(path.join(os.tmpdir(), "callpop-desktop-"));
const dataDir = path.join(home, "data");
// The desktop's opener, as the app finds it on PATH: records what it was given and answers as
// xdg-open does (0: opened; 3: nothing handles it), per the `opener-answer` file.
const fakeBin = path.join(home, "bin");
const openerLog = path.join(home, "opened.log");
const openerAnswer = path.join(home, "opener-answer");
fs.mkdirSync(fakeBin);
fs.writeFileSync(path.join(fakeBin, "xdg-open"), `#!/bin/sh\nprintf '%s\\n' "$1" >> '${openerLog}'\nexit "$(cat '${openerAnswer}' 2>/dev/null || echo 0)"\n`, { mode: 0o755 });
const appEnv = isolatedEnv(home, { CALLPOP_RINGOTEL_API_TOKEN: RO_TOKEN, CALLPOP_NOTIFICATIONS: "off", PATH: `${fakeBin}:${process.env.PATH}` });
const opened = () => (fs.existsSync(openerLog) ? fs.readFileSync(openerLog, "utf8").trim().split("\n") : []);
let app, receiverPort;

const exec = (script, args) => app.exec(script, args);
const textOf = (css) => app.textOf(css);
const click = (css) => app.click(css);
const invoke = (cmd, args) => app.invoke(cmd, args);

/** Closes the call detail, if open, with its close button. */
async function closeDetail() {
  await exec(`[...document.querySelectorAll(".detail-close")].find((b) => b.offsetParent !== null)?.click();`);
}

async function screenshot(name) {
  if (shots) await app.screenshot(path.join(shots, `${name}.png`));
}

async function postRingotel(method, params) {
  const res = await fetch(`http://127.0.0.1:${receiverPort}/api/v1/webhooks/phone_calls_webhooks/ringotel`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ method, api_token: RO_TOKEN, params }),
  });
  assert.equal(res.status, 200, `${method}: ${await res.text()}`);
}

before(async () => {
  assert.ok(fs.existsSync(appBinary), `${appBinary} is missing: build it with cargo build -p callpop-desktop`);
  receiverPort = await freePort();
  const started = Date.now();
  app = await Desktop.launch({
    binary: appBinary,
    args: ["--data-dir", dataDir, "--listen", `127.0.0.1:${receiverPort}`],
    env: appEnv,
  });
  await until("the call log", async () => (await textOf("[data-testid='result-count']"))?.includes("call"));
  console.log(`# window ready ${Date.now() - started} ms after launch`);
});

after(async () => {
  await app?.close();
  // The app may still be flushing its WebKit caches as it exits: removing the temp dir is
  // housekeeping, not something under test, so a leftover is only reported.
  try {
    fs.rmSync(home, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  } catch (e) {
    console.log(`# left ${home} behind: ${e.message}`);
  }
});

test("the window shows the engine's health: receiver listening on the app's port", async () => {
  const health = await invoke("get_health");
  assert.equal(health.listen, `127.0.0.1:${receiverPort}`);
  assert.equal(health.ringotel.token_required, true);
  await until("the status badge", async () => !(await textOf("[data-testid='status-badge']")).includes("Connecting"));
  // A fresh install with no public address and no phone system: it says so, not "all is well".
  assert.equal(health.status, "not_receiving");
  assert.equal(await textOf("[data-testid='status-badge']"), "Not receiving calls");
  assert.match(await textOf("[data-testid='empty-attention']"), /no public address/);
});

test("the tray icon registers on the desktop", async () => {
  // Without a StatusNotifier host, libayatana-appindicator falls back to an XEmbed tray icon:
  // an X window of the tray-icon class, next to the app's own windows.
  const treeOf = () => spawnSync("xwininfo", ["-root", "-tree"], { encoding: "utf8" }).stdout ?? "";
  await until("the tray icon window", async () => /"tray-icon tray app callpop"/.test(treeOf()), 10000).catch((e) => {
    throw new Error(`${e.message}\n${treeOf()}`);
  });
});

test("a posted webhook appears in the call log, then changes live to Missed", async () => {
  const callId = `e2e-${Date.now()}`;
  const start = Date.now();
  await postRingotel("StartCallActivity", {
    call_id: callId, extension: "201", activity_type: "inbound", caller_number: "61398765432",
    called_number: "201", caller_name: "Jane Cooper", call_start: start, domain: "dealership-demo",
  });
  const row = await until("the new row", async () => {
    const rows = await exec(`return [...document.querySelectorAll(".row[data-call-id]:not([hidden])")].map((r) => r.textContent);`);
    return rows.find((t) => t.includes("Jane Cooper"));
  });
  assert.match(row, /\+61 3 9876 5432|\+61 398 765 432|61398765432/);
  console.log(`# webhook → row in ${Date.now() - start} ms`);

  await postRingotel("StopCallActivity", {
    call_id: callId, extension: "201", activity_type: "inbound", caller_number: "61398765432",
    called_number: "201", call_start: start, call_end: Date.now(), call_duration: 0, call_cause: "487",
    domain: "dealership-demo",
  });
  await until("the Missed badge", async () => {
    const rows = await exec(`return [...document.querySelectorAll(".row[data-call-id]:not([hidden])")].map((r) => r.textContent);`);
    return rows.find((t) => t.includes("Jane Cooper") && /Missed/.test(t));
  });

  // The same call, read from the real SQLite file by the CLI.
  if (fs.existsSync(cliBinary)) {
    const out = spawnSync(cliBinary, ["--data-dir", dataDir, "calls", "--json"], { encoding: "utf8", env: appEnv });
    assert.equal(out.status, 0, out.stderr);
    const calls = out.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(calls.length, 1);
    assert.equal(calls[0].call_key, callId);
    assert.equal(calls[0].result, "missed");
  }
});

test("a delivery refused for an old token turns the status red until calls are accepted again", async () => {
  const refused = await fetch(`http://127.0.0.1:${receiverPort}/api/v1/webhooks/phone_calls_webhooks/ringotel`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ method: "StartCallActivity", api_token: "an-old-token-from-the-portal", params: { call_id: `old-${Date.now()}`, extension: "201" } }),
  });
  assert.equal(refused.status, 401);
  await until("Not receiving calls", async () => (await textOf("[data-testid='status-badge']")) === "Not receiving calls");
  await click("#tab-health");
  await until("the reason", async () => /Ringotel is sending calls with a token/.test((await textOf("[data-testid='attention']")) ?? ""));
  await screenshot("health-not-receiving");
  // The portal gets the right token: the next delivery is accepted and all is well again.
  // (The same call's Stop once more, sent by another domain alias: a new delivery, the same call.)
  const [call] = spawnSync(cliBinary, ["--data-dir", dataDir, "calls", "--json"], { encoding: "utf8", env: appEnv }).stdout.trim().split("\n").map((l) => JSON.parse(l));
  await postRingotel("StopCallActivity", {
    call_id: call.call_key, extension: "201", activity_type: "inbound", caller_number: "61398765432",
    called_number: "201", call_start: Date.parse(call.started_at), call_end: Date.parse(call.ended_at), call_duration: 0, call_cause: "487",
    domain: "dealership-demo-alias",
  });
  await until("receiving again", async () => (await textOf("[data-testid='status-badge']")) !== "Not receiving calls");
  await click("#tab-log");
});

test("the detail view shows the call's timeline", async () => {
  await click(".row[data-call-id]");
  await until("the timeline", async () => (await exec("return document.querySelectorAll('.timeline li, .timeline-item').length")) >= 2);
  await closeDetail();
});

test("Call back hands the number to the phone app; with none, it says so and copies the number", async () => {
  await exec(`[...document.querySelectorAll(".row[data-call-id]")].find((r) => r.textContent.includes("Jane Cooper")).click();`);
  await until("the Call back button", async () => exec(`return !!document.querySelector(".detail [data-action='call-back']")`));
  await click(".detail [data-action='call-back']");
  await until("the phone app toast", async () => /with your phone app/.test((await textOf(".toast-success")) ?? ""));
  assert.equal(opened().at(-1), "tel:+61398765432");
  fs.writeFileSync(openerAnswer, "3");
  await click(".detail [data-action='call-back']");
  await until("the no-phone-app toast", async () => /No phone app on this computer/.test((await textOf(".toast-info")) ?? ""));
  fs.rmSync(openerAnswer);
  await closeDetail();
  // The window opens links only through the engine's checks.
  await assert.rejects(invoke("open_link", { url: "file:///etc/passwd" }), /only web, phone and e-mail links/);
  await assert.rejects(invoke("open_export", { path: "/etc/passwd" }), /only the files it exported/);
});

test("Export writes a spreadsheet file a manager can read, then opens it and shows its folder", async () => {
  const folder = path.join(home, "Reports");
  fs.mkdirSync(folder);
  await click("[data-testid='export']");
  await until("the export dialog", async () => exec(`return !!document.querySelector("[data-testid='export-dialog'] input[aria-label='Folder']")`));
  await exec(`const i = document.querySelector("[data-testid='export-dialog'] input[aria-label='Folder']"); i.focus(); i.value = arguments[0];`, [folder]);
  await click("[data-testid='export-go']");
  await until("the export result", async () => /Exported \d+ call/.test((await textOf("[data-testid='export-done']")) ?? ""));
  const files = fs.readdirSync(folder).filter((f) => f.endsWith(".csv"));
  assert.equal(files.length, 1, `one finished file, no partial: ${fs.readdirSync(folder)}`);
  const file = path.join(folder, files[0]);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, "call history is the user's alone");
  const [header, ...rows] = fs.readFileSync(file, "utf8").trim().split("\n");
  assert.equal(header, "Date,Time,Direction,Result,Name,Number,Line,Answered by,Extensions,Ring time,Talk time,Voicemail length,Recording");
  const jane = rows.find((r) => r.includes("Jane Cooper"));
  assert.ok(jane, rows.join("\n"));
  assert.match(jane, /^\d\d\/\d\d\/\d{4},\d{1,2}:\d\d:\d\d( [AP]M)?,Inbound,Missed,Jane Cooper,/);
  await click("[data-testid='export-open']");
  await until("the file handed to the desktop", async () => opened().at(-1) === file);
  await click("[data-testid='export-show']");
  await until("the folder handed to the desktop", async () => opened().at(-1) === folder);
  await exec(`[...document.querySelectorAll("[data-testid='export-dialog'] button")].find((b) => b.textContent === "Done").click();`);
});

test("the Ringotel token is shown for the Ringotel portal; one set by the environment cannot be replaced", async () => {
  assert.deepEqual(await invoke("get_ringotel_token"), { token: RO_TOKEN, from_environment: true });
  await click("#tab-settings");
  const box = `[data-secret="ringotel.api_token"]`;
  await until("the Ringotel token field", async () => exec(`return !!document.querySelector(arguments[0] + " [data-testid='secret-value']")`, [box]));
  assert.match(await textOf(`${box} [data-testid='secret-value']`), /^•+$/, "masked until asked");
  await click(`${box} button[aria-label='Show API token']`);
  await until("the token shown", async () => (await textOf(`${box} [data-testid='secret-value']`)) === RO_TOKEN);
  assert.equal(await exec(`return document.querySelectorAll(arguments[0] + " button[aria-label^='Replace'], " + arguments[0] + " button[aria-label^='Remove']").length`, [box]), 0);
  assert.match(await textOf(box), /Set by CALLPOP_RINGOTEL_API_TOKEN/);
  await click(`${box} button[aria-label='Show API token']`);
  await click("#tab-log");
});

test("settings and health pages render from the engine", async () => {
  await click("#tab-settings");
  await until("the settings form", async () => (await textOf("#panel-settings"))?.includes("RingCentral"));
  const settings = await invoke("get_settings");
  assert.equal(settings.general.data_dir, dataDir);
  assert.equal(JSON.stringify(settings).includes(RO_TOKEN), false, "secrets never reach the window");
  await click("#tab-health");
  await until("the health page", async () => (await textOf("#panel-health"))?.includes(`127.0.0.1:${receiverPort}`));
  await click("#tab-log");
});

/** The update that keeps every setting of `v` except the ones in `change`. */
function updateFrom(v, change) {
  return {
    ringcentral: { server: v.ringcentral.server, client_id: v.ringcentral.client_id },
    ringotel: {},
    tunnel: { mode: v.tunnel.mode, ngrok_domain: v.tunnel.ngrok_domain, public_url: v.tunnel.public_url },
    watch_extensions: v.watch_extensions,
    line_labels: v.line_labels,
    popups: v.popups,
    general: { autostart: v.general.autostart, close_to_tray: v.general.close_to_tray, default_country: v.general.default_country },
    ...change,
  };
}

test("saving settings restarts the engine with them and turns start-at-login on and off", async () => {
  const before = await invoke("get_settings");
  // Desktop-entry autostart (XDG): wherever the launcher library puts it under our HOME.
  const autostartEntries = () =>
    [path.join(appEnv.XDG_CONFIG_HOME, "autostart"), path.join(home, ".config", "autostart")]
      .filter((d) => fs.existsSync(d))
      .flatMap((d) => fs.readdirSync(d).filter((f) => f.endsWith(".desktop")).map((f) => path.join(d, f)));
  assert.deepEqual(autostartEntries(), []);

  const bad = await invoke("save_settings", { update: updateFrom(before, { watch_extensions: ["20 1"] }) });
  assert.equal(bad.ok, false);
  assert.equal(bad.errors[0].field, "watch_extensions.0");

  const saved = await invoke("save_settings", {
    update: updateFrom(before, {
      watch_extensions: ["201"],
      line_labels: [{ number: "+61 3 9000 1000", label: "Sales" }],
      general: { ...updateFrom(before).general, autostart: true },
    }),
  });
  assert.equal(saved.ok, true, JSON.stringify(saved));
  assert.deepEqual(saved.settings.watch_extensions, ["201"]);
  assert.equal(saved.settings.general.autostart, true);
  const entries = autostartEntries();
  assert.equal(entries.length, 1, "one autostart entry");
  const entry = fs.readFileSync(entries[0], "utf8");
  assert.match(entry, new RegExp(`Exec=.*callpop-desktop.*--hidden`));
  // The restarted engine answers on the same port, with the new line label.
  const health = await invoke("get_health");
  assert.equal(health.listen, `127.0.0.1:${receiverPort}`);
  await postRingotel("StartCallActivity", {
    call_id: `e2e-label-${Date.now()}`, extension: "201", activity_type: "inbound", caller_number: "61298765000",
    called_number: "61390001000", caller_name: "Marcus Lee", call_start: Date.now(), domain: "dealership-demo",
  });
  await until("the labelled row", async () => {
    const rows = await exec(`return [...document.querySelectorAll(".row[data-call-id]:not([hidden])")].map((r) => r.textContent);`);
    return rows.find((t) => t.includes("Marcus Lee") && t.includes("Sales"));
  });

  const off = await invoke("save_settings", { update: updateFrom(saved.settings, { general: { ...updateFrom(saved.settings).general, autostart: false } }) });
  assert.equal(off.ok, true);
  assert.deepEqual(autostartEntries(), [], "start at login is off again");
});

test("the window may not call anything outside its capability", async () => {
  await assert.rejects(invoke("plugin:autostart|enable"), /not allowed|denied|permission/i);
});

test("a second launch hands over to the running app and exits", async () => {
  const second = spawnSync(appBinary, ["--data-dir", dataDir, "--listen", `127.0.0.1:${receiverPort}`], {
    env: appEnv, encoding: "utf8", timeout: 20000,
  });
  assert.equal(second.error, undefined, "the second launch exits on its own");
  assert.equal(second.status, 0, second.stderr);
  // The first one still answers.
  const health = await invoke("get_health");
  assert.equal(health.listen, `127.0.0.1:${receiverPort}`);
});

test("joining a hub from the Hub tab: a call at the hub appears in this window; leaving makes it standalone again", async () => {
  // A headless hub on loopback, as the reception PC would run it.
  const hubDir = path.join(home, "hub");
  const [hubReceiver, hubPort] = [await freePort(), await freePort()];
  const hubEnv = { ...appEnv, CALLPOP_RINGOTEL_API_TOKEN: "hub-ringotel-token", CALLPOP_HUB_NAME: "Reception", CALLPOP_SECRET_STORE: "file" };
  const hub = spawn(cliBinary, ["--data-dir", hubDir, "serve", "--listen", `127.0.0.1:${hubReceiver}`, "--hub-listen", `127.0.0.1:${hubPort}`], { env: hubEnv, stdio: ["ignore", "pipe", "ignore"] });
  try {
    await until("the hub listening", async () => (await fetch(`http://127.0.0.1:${hubReceiver}/healthz`).catch(() => null))?.ok);
    const paired = spawnSync(cliBinary, ["--data-dir", hubDir, "hub", "pair", "--json"], { encoding: "utf8", env: hubEnv });
    assert.equal(paired.status, 0, paired.stderr);
    const { code } = JSON.parse(paired.stdout);
    await click("#tab-hub");
    await until("the Hub tab", async () => (await textOf("#panel-hub"))?.includes("Join the dealership's hub"));
    await exec(`
      const set = (id, v) => { const el = document.querySelector(id); el.value = v; el.dispatchEvent(new Event("input", { bubbles: true })); };
      set("[data-testid='join-address']", arguments[0]);
      set("[data-testid='join-code']", arguments[1]);
      set("[data-testid='join-name']", "Front desk");
      document.querySelector("[data-testid='join-hub']").click();`, [`127.0.0.1:${hubPort}`, code]);
    await until("connected to the hub", async () => exec(`return document.querySelector("[data-testid='link']")?.dataset.state === "connected";`), 40000);
    // A call rings at the hub; it shows in this desk's call log.
    const start = Date.now();
    const res = await fetch(`http://127.0.0.1:${hubReceiver}/api/v1/webhooks/phone_calls_webhooks/ringotel`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ method: "StartCallActivity", api_token: "hub-ringotel-token", params: {
        call_id: `hub-e2e-${start}`, extension: "201", activity_type: "inbound", caller_number: "14155550177",
        called_number: "201", caller_name: "Dana Whitfield", call_start: start, domain: "dealership-demo" } }),
    });
    assert.equal(res.status, 200, await res.text());
    await click("#tab-log");
    await until("the hub's call in the log", async () => {
      const rows = await exec(`return [...document.querySelectorAll(".row[data-call-id]:not([hidden])")].map((r) => r.textContent);`);
      return rows.find((t) => t.includes("Dana Whitfield"));
    });
    console.log(`# webhook at the hub → row in this desk's window in ${Date.now() - start} ms`);
    if (shots) {
      // The hub has now accepted a call, so it says it is receiving.
      await click("#tab-hub");
      await until("the hub receiving", async () => (await textOf("[data-testid='link-detail']"))?.includes("The hub is receiving calls"), 40000);
      await exec(`document.querySelectorAll(".toast").forEach((t) => t.remove());`);
      await screenshot("hub-desk-connected");
    }
    // Leave again: standalone, the call kept.
    await click("#tab-hub");
    await until("the leave button", async () => exec(`return !!document.querySelector("[data-testid='leave-hub']");`));
    await click("[data-testid='leave-hub']");
    await until("the confirmation", async () => exec(`return !!document.querySelector("[data-testid='confirm-yes']");`));
    await click("[data-testid='confirm-yes']");
    await until("standalone again", async () => exec(`return !!document.querySelector("[data-testid='join-hub']");`), 30000);
    await click("#tab-log");
    assert.ok(await exec(`return [...document.querySelectorAll(".row[data-call-id]")].some((r) => r.textContent.includes("Dana Whitfield"));`));
  } finally {
    hub.kill("SIGTERM");
  }
});

test("screenshots of a working day (CALLPOP_SCREENSHOTS=DIR)", { skip: !shots && "no CALLPOP_SCREENSHOTS" }, async () => {
  const now = Date.now();
  const people = [
    ["Priya Shah", "61412555018", "201", 27, 4],
    ["", "61298765432", "202", 0, 12],
    ["Tom Becker", "61731234567", "201", 312, 35],
    ["Northside Motors", "61390004321", "203", 95, 58],
    ["Aisha Rahman", "61401999222", "202", 0, 81],
    ["Luis Ortega", "61882223344", "201", 640, 122],
    ["Grace Kim", "61433123456", "204", 188, 190],
    ["", "61249998888", "203", 0, 260],
  ];
  for (const [i, [name, from, ext, talk, minutesAgo]] of people.entries()) {
    const call_id = `shot-${i}-${now}`;
    const start = now - minutesAgo * 60_000;
    const common = { call_id, extension: ext, activity_type: "inbound", caller_number: from, called_number: i % 3 ? "61390001000" : "61390002000", domain: "dealership-demo", call_start: start };
    await postRingotel("StartCallActivity", name ? { ...common, caller_name: name } : common);
    await postRingotel("StopCallActivity", { ...common, call_end: start + (talk + 9) * 1000, call_duration: talk, call_cause: talk ? "0" : "487" });
  }
  await closeDetail();
  await until("a full log", async () => (await exec("return document.querySelectorAll('.row[data-call-id]:not([hidden])').length")) >= people.length);
  // As a person sees it a moment later: the new rows' highlight gone, earlier toasts closed.
  await exec(`document.querySelectorAll(".toast-close").forEach((b) => b.click());`);
  await until("the new-row highlight to end", async () => (await exec("return document.querySelectorAll('.row.is-new').length")) === 0, 10000);
  await screenshot("log");
  await exec(`[...document.querySelectorAll(".row[data-call-id]")].find((r) => r.textContent.includes("Tom Becker")).click();`);
  await until("the timeline", async () => (await exec("return document.querySelectorAll('.timeline li, .timeline-item').length")) >= 2);
  await screenshot("detail");
  await closeDetail();
  await click("#tab-settings");
  await until("the settings form", async () => (await textOf("#panel-settings"))?.includes("RingCentral"));
  await screenshot("settings");
  await click("#tab-health");
  await until("the health page", async () => (await textOf("#panel-health"))?.includes(`127.0.0.1:${receiverPort}`));
  await screenshot("health");
  await click("#tab-log");
});
