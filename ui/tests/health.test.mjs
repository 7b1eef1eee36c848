// Health cards and their fixing actions, the header status badge, live health-changed, and the
// pause-popups menu.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appSuite } from "./harness.mjs";

const { withApp } = appSuite(assert);

const part = (state, detail) => ({ state, detail, since: "2026-11-23T18:00:00Z" });
const card = (key) => `.health-card[data-part="${key}"]`;

test("healthy: ok badge, no fixing buttons except Backfill now, live switch to error shows the right actions", async () => {
  await withApp({}, async (page) => {
    await page.waitForSelector("[data-testid='status-badge'][data-status='ok']");
    assert.equal(await page.textContent("[data-testid='status-badge']"), "Receiving calls");
    await page.click("[data-testid='status-badge']");
    assert.equal(await page.getAttribute("#tab-health", "aria-selected"), "true", "the badge opens Health");
    await page.waitForSelector(card("receiver"));
    assert.equal(await page.$$eval("[data-action='reconnect_tunnel'], [data-action='recreate_subscription']", (b) => b.length), 0);
    assert.equal(await page.$$eval(`${card("backfill")} [data-action='backfill_now']`, (b) => b.length), 1);
    assert.match(await page.textContent(card("subscription")), /Active until 2026-11-30 10:00/);
    assert.match(await page.textContent(card("receiver")), /127\.0\.0\.1:8787/);
    assert.match(await page.textContent(`${card("receiver")} tr[data-provider='ringcentral']`), /18,234/);
    assert.match(await page.textContent(card("storage")), /OK/);

    // health-changed: the tunnel drops and the subscription expires.
    await page.evaluate(() => window.__mock.setHealth({
      status: "error", parts: {
        subscription: { state: "expired", detail: "Expired 2026-11-23 09:00", since: "2026-11-23T17:00:00Z" },
        tunnel: { state: "offline", detail: "ngrok: connection refused", since: "2026-11-23T18:20:00Z" },
        notifications: { state: "active", detail: "Desktop notifications allowed", since: "2026-11-22T16:30:00Z" },
        backfill: { state: "idle", detail: "Last backfill 09:12", since: "2026-11-23T17:12:00Z" },
      },
      storage_error: "disk I/O error",
    }));
    await page.waitForSelector("[data-testid='status-badge'][data-status='error']");
    assert.equal(await page.textContent("[data-testid='status-badge']"), "Calls cannot be saved");
    await page.waitForSelector(`${card("tunnel")} [data-action='reconnect_tunnel']`);
    assert.ok(await page.$(`${card("subscription")} [data-action='recreate_subscription']`));
    assert.match(await page.textContent(`${card("tunnel")} .state-pill`), /Offline/);
    assert.match(await page.textContent(card("storage")), /disk I\/O error/);
    assert.match(await page.getAttribute(card("storage"), "class"), /tone-error/);
  });
});

test("each problem state offers the action that fixes it, and the button calls the right command", async () => {
  const health = {
    status: "error",
    parts: {
      subscription: part("blacklisted", "RingCentral blacklisted the webhook"),
      tunnel: part("error", "ngrok: authentication failed"),
      notifications: part("active", "Allowed"),
      backfill: part("error", "Last backfill failed: 429 Too Many Requests"),
    },
  };
  await withApp({ mock: { health } }, async (page) => {
    await page.click("#tab-health");
    await page.waitForSelector(card("tunnel"));
    for (const [key, action, label, message] of [
      ["tunnel", "reconnect_tunnel", "Reconnect", "Tunnel reconnected"],
      ["subscription", "recreate_subscription", "Re-create subscription", "Subscription re-created"],
      ["backfill", "backfill_now", "Backfill now", "no call was missing"],
    ]) {
      const btn = `${card(key)} [data-action='${action}']`;
      assert.equal((await page.textContent(btn)).trim(), label);
      await page.click(btn);
      await page.waitForFunction((m) => [...document.querySelectorAll(".toast-success")].some((t) => t.textContent.includes(m)), message);
      const sent = await page.evaluate(() => window.__mock.callsOf("run_health_action").at(-1).args);
      assert.deepEqual(sent, { action });
    }
    // Actions report failures as error toasts.
    await page.evaluate(() => window.__mock.failNext("run_health_action", "ngrok is not installed"));
    await page.click(`${card("tunnel")} [data-action='reconnect_tunnel']`);
    await page.waitForSelector(".toast-error:has-text('ngrok is not installed')");
    // Keyboard: the action buttons are reachable and labelled.
    await page.focus(`${card("tunnel")} [data-action='reconnect_tunnel']`);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.action), "reconnect_tunnel");
  });
});

test("a cause that a setting fixes opens that setting instead of offering a retry that fails again", async () => {
  const health = {
    status: "degraded",
    parts: {
      subscription: { ...part("error", "RingCentral refused the credentials: the JWT is wrong, expired or revoked (create a new one for the user CallPop signs in as) (OAU-140: Invalid resource owner credentials)"), fix: "ringcentral" },
      tunnel: { ...part("error", "RingCentral cannot reach this address: nothing there answered its check. Check the public URL (or use ngrok)."), fix: "tunnel" },
      notifications: part("on", "Popups are on"),
    },
  };
  await withApp({ mock: { health } }, async (page) => {
    await page.click("#tab-health");
    await page.waitForSelector(card("subscription"));
    assert.equal(await page.$$eval("[data-action='recreate_subscription'], [data-action='reconnect_tunnel']", (b) => b.length), 0, "no retry for a wrong JWT or a dead address");
    assert.equal((await page.textContent(`${card("subscription")} [data-fix='ringcentral']`)).trim(), "Open RingCentral settings");
    assert.match(await page.textContent(card("subscription")), /the JWT is wrong, expired or revoked/);
    assert.equal((await page.textContent(`${card("tunnel")} [data-fix='tunnel']`)).trim(), "Set up the public address");
    // No backfill reported: it is not set up, and the card says what it needs.
    assert.match(await page.textContent(`${card("backfill")} .state-pill`), /Not set up/);
    assert.match(await page.textContent(card("backfill")), /Needs the RingCentral client ID, client secret and JWT/);
    await page.click(`${card("subscription")} [data-fix='ringcentral']`);
    assert.equal(await page.getAttribute("#tab-settings", "aria-selected"), "true");
    await page.waitForFunction(() => document.querySelector(".settings-nav .is-current")?.textContent?.includes("RingCentral"));
  });
});

test("degraded status, warning counters and a token check that is off are visible", async () => {
  const health = {
    status: "degraded",
    ringotel: { accepted: 10, duplicates: 0, unauthorized: 7, rejected: 1, quarantined: 2, handshakes: 0, last_accepted_at: null, token_required: false },
    parts: { subscription: part("renewing", "Renewing"), tunnel: part("reconnecting", "Reconnecting to ngrok"), notifications: part("paused", "Paused"), backfill: part("idle", "Idle") },
  };
  await withApp({ mock: { health } }, async (page) => {
    await page.waitForSelector("[data-testid='status-badge'][data-status='degraded']");
    assert.match(await page.getAttribute("[data-testid='status-badge']", "class"), /tone-warn/);
    await page.click("#tab-health");
    const row = await page.$$eval(`${card("receiver")} tr[data-provider='ringotel'] td`, (t) => t.map((x) => ({ text: x.textContent, warn: x.classList.contains("is-warn") })));
    assert.deepEqual(row.map((r) => r.text), ["10", "0", "7", "1", "2", "never"]);
    assert.deepEqual(row.map((r) => r.warn), [false, false, true, true, true, false]);
    assert.match(await page.textContent(card("receiver")), /token check is off for Ringotel/);
    assert.equal(await page.$$eval("[data-action='reconnect_tunnel']", (b) => b.length), 0, "no reconnect while it is already reconnecting");
  });
});

test("pause popups menu: 1 hour, until resumed, resume (keyboard operable)", async () => {
  await withApp({}, async (page) => {
    await page.waitForFunction(() => window.__mock.callsOf("get_pause").length === 1);
    assert.match(await page.textContent("[data-testid='pause-button']"), /Popups on/);
    await page.click("[data-testid='pause-button']");
    assert.equal(await page.getAttribute("[data-testid='pause-button']", "aria-expanded"), "true");
    assert.equal(await page.isDisabled("[data-testid='pause-resume']"), true, "nothing to resume");
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "pause-hour", "focus in the menu");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("[data-testid='pause-button']").textContent.includes("Paused until"));
    assert.deepEqual(await page.evaluate(() => window.__mock.callsOf("set_pause").at(-1).args), { minutes: 60 });
    assert.match(await page.textContent("[data-testid='pause-button']"), /Paused until 11:30 AM/);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "pause-button", "focus returns to the button");

    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "pause-forever");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("[data-testid='pause-button']").textContent.includes("Popups paused"));
    assert.deepEqual(await page.evaluate(() => window.__mock.callsOf("set_pause").at(-1).args), { minutes: null });

    await page.click("[data-testid='pause-button']");
    await page.click("[data-testid='pause-resume']");
    await page.waitForFunction(() => document.querySelector("[data-testid='pause-button']").textContent.includes("Popups on"));
    assert.equal(await page.evaluate(() => window.__mock.callsOf("resume").length), 1);

    // Escape and outside clicks close the menu.
    await page.click("[data-testid='pause-button']");
    await page.keyboard.press("Escape");
    assert.equal(await page.isHidden(".menu"), true);
    await page.click("[data-testid='pause-button']");
    await page.mouse.click(300, 400);
    assert.equal(await page.isHidden(".menu"), true);
  });
});

test("credentials: the keyring is fine, the file fallback is flagged with where they are and how to fix it", async () => {
  await withApp({}, async (page) => {
    await page.click("[data-testid='status-badge']");
    await page.waitForSelector(card("credentials"));
    assert.equal((await page.textContent(`${card("credentials")} .state-pill`)).trim(), "OS keyring");
    assert.match(await page.getAttribute(card("credentials"), "class"), /tone-ok/);
    const fallback = "no OS keyring answered, so credentials are kept in /home/desk/.local/share/callpop/secrets.json (readable only by you); unlock or install a keyring (GNOME Keyring, KWallet) and restart CallPop to use it";
    await page.evaluate((detail) => {
      const { parts } = window.__mock.setHealth({});
      window.__mock.setHealth({ parts: { ...parts, credentials: { state: "fallback", detail, since: "2026-11-23T18:00:00Z" } } });
    }, fallback);
    await page.waitForSelector(`${card("credentials")}.tone-warn`);
    assert.equal((await page.textContent(`${card("credentials")} .state-pill`)).trim(), "File fallback");
    assert.match(await page.textContent(card("credentials")), /secrets\.json \(readable only by you\)/);
    assert.match(await page.textContent(".health-summary"), /Credentials: file fallback/);
  });
});

test("storage: a writer restart is reported once calls are stored again; an error says RingCentral does not resend", async () => {
  const health = { writer_restarts: 2, writer_last_failure: "its disk-sync thread stopped" };
  await withApp({ mock: { health } }, async (page) => {
    await page.click("#tab-health");
    await page.waitForSelector(card("storage"));
    assert.match(await page.textContent(card("storage")), /OK/);
    assert.match(await page.textContent("[data-testid='writer-restarts']"), /stopped 2 times after a bug and was restarted \(last: its disk-sync thread stopped\)/);
    await page.evaluate(() => window.__mock.setHealth({ status: "error", storage_error: "unwritable: disk full", storage_error_since: "2026-11-23T18:00:00Z" }));
    await page.waitForFunction(() => /disk full/.test(document.querySelector('.health-card[data-part="storage"]')?.textContent ?? ""));
    assert.match(await page.textContent(card("storage")), /RingCentral does not send them again/);
  });
});

test("not receiving: a desk no call can reach says so everywhere, with the fix one click away", async () => {
  const health = {
    status: "not_receiving",
    public_url: null, ringcentral_webhook_url: null, ringotel_webhook_url: null,
    attention: { text: "This computer has no public address, so RingCentral and Ringotel cannot reach it. Set up ngrok or a public URL.", fix: "tunnel" },
    parts: {
      tunnel: part("off", "no public URL"),
      subscription: part("off", "set the RingCentral client id, client secret and JWT"),
      notifications: part("off", "desktop notifications are turned off"),
    },
  };
  await withApp({ mock: { health, size: 0 }, waitForRows: false }, async (page) => {
    await page.waitForSelector("[data-testid='status-badge'][data-status='not_receiving']");
    assert.equal(await page.textContent("[data-testid='status-badge']"), "Not receiving calls");
    assert.match(await page.getAttribute("[data-testid='status-badge']", "class"), /tone-error/);
    assert.match(await page.getAttribute("[data-testid='status-badge']", "title"), /no public address/);
    // The empty log says what is missing instead of promising calls.
    await page.waitForSelector("[data-testid='empty-attention']");
    assert.match(await page.textContent("[data-testid='empty-attention']"), /no public address/);
    // Popups turned off are not "on".
    assert.equal(await page.textContent(".pause-label"), "Popups off");
    await page.click("#tab-health");
    await page.waitForSelector("[data-testid='health-banner'][data-status='not_receiving']");
    assert.match(await page.textContent("[data-testid='attention']"), /cannot reach it/);
    assert.equal(await page.textContent("[data-testid='attention-fix']"), "Set up the public address");
    await page.click("[data-testid='attention-fix']");
    assert.equal(await page.getAttribute("#tab-settings", "aria-selected"), "true", "the fix opens Settings");
    await page.waitForFunction(() => document.querySelector(".settings-nav .is-current")?.textContent?.includes("Public URL"));

    // The phone system then delivers with another token: a different sentence, another fix.
    await page.evaluate(() => window.__mock.setHealth({
      status: "not_receiving",
      attention: { text: "Ringotel is sending calls with a token that does not match this desk's, so they are refused and lost. Copy the API token from Settings into the Ringotel portal.", fix: "ringotel" },
    }));
    await page.click("#tab-health");
    await page.waitForFunction(() => /Ringotel is sending calls/.test(document.querySelector("[data-testid='attention']")?.textContent ?? ""));
    assert.equal(await page.textContent("[data-testid='attention-fix']"), "Open Ringotel settings");
  });
});

test("over the WebSocket: the RingCentral connection card replaces the subscription, with Connect now when it is down", async () => {
  const health = {
    status: "ok",
    public_url: null, ringcentral_webhook_url: null,
    ringcentral_transport: "websocket",
    parts: {
      websocket: part("active", "Connected: RingCentral sends this account's calls over a connection CallPop opened (no public address needed)."),
      subscription: part("off", "Not needed: RingCentral sends calls over the WebSocket."),
      tunnel: part("off", "No public address"),
      notifications: part("on", "Popups are on"),
    },
  };
  await withApp({ mock: { health } }, async (page) => {
    await page.click("#tab-health");
    await page.waitForSelector(card("websocket"));
    assert.equal(await page.$$(card("subscription")).then((c) => c.length), 0, "no webhook card while it is not needed");
    assert.match(await page.textContent(card("websocket")), /no public address/);
    assert.match(await page.textContent("[data-testid='attention']"), /over WebSocket/);
    await page.evaluate(() => window.__mock.setHealth({
      status: "degraded", ringcentral_transport: "websocket",
      parts: {
        websocket: { state: "reconnecting", detail: "The connection to RingCentral closed (closed by RingCentral); reconnecting.", since: "2026-11-23T18:00:00Z" },
        subscription: { state: "off", detail: "Not needed", since: "2026-11-23T18:00:00Z" },
      },
    }));
    await page.waitForSelector(`${card("websocket")} [data-action='reconnect_websocket']`);
    await page.click(`${card("websocket")} [data-action='reconnect_websocket']`);
    await page.waitForFunction(() => window.__mock.callsOf("run_health_action").some((c) => c.args.action === "reconnect_websocket"));
  });
});
