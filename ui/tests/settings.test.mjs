// Settings: inline validation, engine FieldErrors on the right field, write-only secrets,
// save/discard state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appSuite, assertClean } from "./harness.mjs";

const { open } = appSuite(assert);

async function withSettings(fn, opts = {}) {
  const app = await open(opts);
  try {
    await app.page.click("#tab-settings");
    await app.page.waitForSelector(".settings-section");
    await fn(app.page, app);
    await assertClean(app, assert);
  } finally {
    await app.close();
  }
}

const field = (path) => `[data-path="${path}"]`;
const input = (path) => `${field(path)} input`;
const errorOf = (page, path) => page.$eval(`.field-error[data-field="${path}"]`, (e) => (e.hidden ? null : e.textContent));

async function typeInto(page, path, value) {
  await page.fill(input(path), value);
  await page.locator(input(path)).blur();
}

test("Save is disabled until something changes; unsaved-changes indicator; discard restores", async () => {
  await withSettings(async (page) => {
    assert.equal(await page.isDisabled("[data-testid='save']"), true);
    assert.equal(await page.textContent(".save-status"), "");
    await page.fill(input("ringcentral.client_id"), "kQ9mZ2vLr8xT4pWcX");
    assert.equal(await page.isDisabled("[data-testid='save']"), false);
    assert.match(await page.textContent(".save-status"), /Unsaved changes/);
    assert.match(await page.getAttribute("#tab-settings", "class"), /has-dot/);
    // Typing the original value back is not a change.
    await page.fill(input("ringcentral.client_id"), "kQ9mZ2vLr8xT4pWc");
    assert.equal(await page.isDisabled("[data-testid='save']"), true);
    await page.fill(input("ringcentral.client_id"), "changed-id-1");
    await page.click("text=Discard");
    assert.equal(await page.inputValue(input("ringcentral.client_id")), "kQ9mZ2vLr8xT4pWc");
    assert.equal(await page.isDisabled("[data-testid='save']"), true);
  });
});

test("client-side validation: URLs, quiet hours, extensions, numbers and ranges show inline messages", async () => {
  await withSettings(async (page) => {
    // RingCentral server: https, or http://127.0.0.1:PORT only.
    await typeInto(page, "ringcentral.server", "http://example.com");
    assert.match(await errorOf(page, "ringcentral.server"), /https:\/\/.*127\.0\.0\.1:PORT/);
    assert.equal(await page.getAttribute(input("ringcentral.server"), "aria-invalid"), "true");
    const describedBy = await page.getAttribute(input("ringcentral.server"), "aria-describedby");
    const errId = await page.$eval(`.field-error[data-field="ringcentral.server"]`, (e) => e.id);
    assert.ok(describedBy.split(" ").includes(errId), "error is announced with the field");
    await typeInto(page, "ringcentral.server", "http://127.0.0.1:8089");
    assert.equal(await errorOf(page, "ringcentral.server"), null);
    await typeInto(page, "ringcentral.server", "http://127.0.0.1:99999");
    assert.match(await errorOf(page, "ringcentral.server"), /port/i);
    await typeInto(page, "ringcentral.server", "https://platform.devtest.ringcentral.com");
    assert.equal(await errorOf(page, "ringcentral.server"), null);

    // Public URL mode: must be https.
    await page.click(".choice-card:has-text('My own public URL')");
    await typeInto(page, "tunnel.public_url", "http://callpop.example.com");
    assert.match(await errorOf(page, "tunnel.public_url"), /https:\/\//);
    await typeInto(page, "tunnel.public_url", "https://callpop.example.com");
    assert.equal(await errorOf(page, "tunnel.public_url"), null);

    // Quiet hours HH:MM.
    await typeInto(page, "popups.quiet_hours.start", "25:00");
    assert.match(await errorOf(page, "popups.quiet_hours.start"), /HH:MM/);
    await typeInto(page, "popups.quiet_hours.start", "7:3");
    assert.match(await errorOf(page, "popups.quiet_hours.start"), /HH:MM/);
    // "7:30am" is the 07:30 the end already says.
    await typeInto(page, "popups.quiet_hours.start", "7:30am");
    assert.match(await errorOf(page, "popups.quiet_hours.end"), /differ/);
    await typeInto(page, "popups.quiet_hours.start", "10pm");
    assert.equal(await errorOf(page, "popups.quiet_hours.start"), null);
    await typeInto(page, "popups.quiet_hours.start", "22:00");
    assert.equal(await errorOf(page, "popups.quiet_hours.start"), null);
    assert.equal(await errorOf(page, "popups.quiet_hours.end"), null);

    // Ranges.
    await typeInto(page, "popups.max_on_screen", "0");
    assert.match(await errorOf(page, "popups.max_on_screen"), /1 to 10/);
    await typeInto(page, "popups.max_on_screen", "abc");
    assert.match(await errorOf(page, "popups.max_on_screen"), /whole number/);
    await typeInto(page, "popups.max_on_screen", "4");
    assert.equal(await errorOf(page, "popups.max_on_screen"), null);
    await typeInto(page, "popups.answered_close_seconds", "9000");
    assert.match(await errorOf(page, "popups.answered_close_seconds"), /0 to 600/);
    await typeInto(page, "popups.answered_close_seconds", "10");

    // CRM template: https and known placeholders only.
    await typeInto(page, "popups.crm_url_template", "https://crm.example.com/find?p={phone}");
    assert.match(await errorOf(page, "popups.crm_url_template"), /Unknown placeholder \{phone\}/);
    await typeInto(page, "popups.crm_url_template", "http://crm.example.com/find?p={e164}");
    assert.match(await errorOf(page, "popups.crm_url_template"), /https:\/\//);
    // Plain http only on the dealership's network, and then with a warning.
    await typeInto(page, "popups.crm_url_template", "http://192.168.1.20/dms?p={number}");
    assert.equal(await errorOf(page, "popups.crm_url_template"), null);
    assert.match(await page.textContent("[data-testid='crm-warning']"), /Not encrypted/);
    await typeInto(page, "popups.crm_url_template", "https://crm.example.com/find?p={e164}&n={name}");
    assert.equal(await errorOf(page, "popups.crm_url_template"), null);
    assert.match(await page.textContent(".crm-preview"), /p=%2B14155550123&n=Jane%20Doe/);

    // Watched extensions: digits only; duplicates refused; valid ones become chips.
    const chips = page.locator(".chips-input");
    await chips.fill("10a");
    await chips.press("Enter");
    assert.match(await errorOf(page, "watch_extensions"), /“10a”.*digits only/);
    assert.equal(await page.$$eval(".chip", (c) => c.length), 3, "invalid entry not added");
    await chips.fill("101");
    await chips.press("Enter");
    assert.match(await errorOf(page, "watch_extensions"), /already in the list/);
    await chips.fill("104");
    await chips.press("Enter");
    assert.equal(await errorOf(page, "watch_extensions"), null);
    assert.deepEqual(await page.$$eval(".chip", (c) => c.map((x) => x.dataset.value)), ["101", "102", "110", "104"]);
    await page.click(".chip[data-value='102'] .chip-x");
    assert.deepEqual(await page.$$eval(".chip", (c) => c.map((x) => x.dataset.value)), ["101", "110", "104"]);
    // Written the way people write them: "Ext 105, x106" is two extensions.
    await chips.fill("Ext 105, x106");
    await chips.press("Enter");
    assert.deepEqual(await page.$$eval(".chip", (c) => c.map((x) => x.dataset.value)), ["101", "110", "104", "105", "106"]);
    await page.click(".chip[data-value='105'] .chip-x");
    await page.click(".chip[data-value='106'] .chip-x");

    // Line labels: number and label required; duplicates flagged.
    await page.click("text=Add line");
    await page.fill(input("line_labels.3.number"), "+1 (415) 555-0100");
    await page.fill(input("line_labels.3.label"), "Sales again");
    await page.locator(input("line_labels.3.label")).blur();
    await page.locator(input("line_labels.3.number")).focus();
    await page.locator(input("line_labels.3.number")).blur();
    assert.match(await errorOf(page, "line_labels.3.number"), /Already labelled in row 1/);
    await page.fill(input("line_labels.3.number"), "call me");
    await page.locator(input("line_labels.3.number")).blur();
    assert.match(await errorOf(page, "line_labels.3.number"), /phone number/);

    // Saving with errors saves nothing and focuses the first problem.
    await page.click("[data-testid='save']");
    assert.equal(await page.evaluate(() => window.__mock.callsOf("save_settings").length), 0);
    assert.match(await page.textContent(".save-status"), /needs attention|need attention/);
    assert.equal(await page.evaluate(() => document.activeElement.closest("[data-path]")?.dataset.path), "line_labels.3.number");
    assert.match(await page.getAttribute(".nav-item:has-text('Line labels')", "class"), /has-error/);

    await page.fill(input("line_labels.3.number"), "+1 415 555 0177");
    // A new public URL is asked about first; Cancel saves nothing.
    await page.click("[data-testid='save']");
    await page.waitForSelector("[data-testid='confirm']");
    assert.match(await page.textContent("[data-testid='confirm']"), /Send every call event to https:\/\/callpop\.example\.com/);
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), "confirm-no", "the safe answer has the focus");
    await page.click("[data-testid='confirm-no']");
    assert.equal(await page.$("[data-testid='confirm']"), null);
    assert.equal(await page.isDisabled("[data-testid='save']"), false, "still unsaved");
    assert.equal(await page.evaluate(() => window.__mock.callsOf("save_settings").length), 1);
    await page.click("[data-testid='save']");
    await page.click("[data-testid='confirm-yes']");
    await page.waitForSelector(".toast-success");
    // The "saved" toast does not cover the save bar's buttons.
    const [toastBox, barBox] = await page.evaluate(() => [".toast-success", ".save-bar"].map((css) => document.querySelector(css).getBoundingClientRect().toJSON()));
    assert.ok(toastBox.bottom <= barBox.top, `toast ${JSON.stringify(toastBox)} over the bar ${JSON.stringify(barBox)}`);
    assert.equal(await page.evaluate(() => window.__mock.callsOf("save_settings").at(-1).args.update.confirmed), true);
    const sent = await page.evaluate(() => window.__mock.callsOf("save_settings").at(-1).args.update);
    assert.equal(sent.ringcentral.server, "https://platform.devtest.ringcentral.com");
    assert.deepEqual(sent.watch_extensions, ["101", "110", "104"]);
    assert.deepEqual(sent.line_labels.at(-1), { number: "+1 415 555 0177", label: "Sales again" });
    assert.deepEqual(sent.popups.quiet_hours, { start: "22:00", end: "07:30" });
    assert.equal(sent.popups.max_on_screen, 4);
    assert.equal(sent.tunnel.mode, "provided");
    assert.equal(sent.tunnel.public_url, "https://callpop.example.com");
    assert.equal(sent.ringcentral.client_secret, null, "untouched secrets are left unchanged");
    assert.equal(sent.ringcentral.jwt, null);
    assert.equal(await page.isDisabled("[data-testid='save']"), true, "saved: nothing left to save");
  });
});

test("engine-side FieldErrors appear next to the right field (including list rows and chips)", async () => {
  await withSettings(async (page) => {
    await page.fill(input("ringcentral.client_id"), "rejected-by-server");
    await page.fill(input("line_labels.1.label"), "Server says no");
    const chips = page.locator(".chips-input");
    await chips.fill("999999");
    await chips.press("Enter");
    await page.click("[data-testid='save']");
    await page.waitForSelector(`.field-error[data-field="ringcentral.client_id"]:not([hidden])`);
    assert.equal(await errorOf(page, "ringcentral.client_id"), "RingCentral does not know this client ID.");
    assert.equal(await errorOf(page, "line_labels.1.label"), "This label is reserved.");
    assert.equal(await errorOf(page, "line_labels.0.label"), null, "only the row the engine named");
    assert.match(await errorOf(page, "watch_extensions"), /999999 does not exist/);
    assert.match(await page.getAttribute(".chip[data-value='999999']", "class"), /is-invalid/);
    assert.match(await page.textContent(".save-status"), /Not saved/);
    assert.equal(await page.evaluate(() => document.activeElement.closest("[data-path]")?.dataset.path), "ringcentral.client_id", "focus moves to the first error");
    // Editing the field clears its server error.
    await page.fill(input("ringcentral.client_id"), "kQ9mZ2vLr8xT4pWc");
    assert.equal(await errorOf(page, "ringcentral.client_id"), null);
    assert.equal(await errorOf(page, "line_labels.1.label"), "This label is reserved.");

  });
});

test("unknown server FieldError paths are summarised; rejected invokes become toasts", async () => {
  await withSettings(async (page) => {
    await page.fill(input("ringcentral.client_id"), "another-client");
    await page.evaluate(() => window.__mock.failNext("save_settings", "settings file is read-only"));
    await page.click("[data-testid='save']");
    await page.waitForSelector(".toast-error");
    assert.match(await page.textContent(".toast-error"), /read-only/);
    assert.equal(await page.isDisabled("[data-testid='save']"), false, "still unsaved");
    // Make the mock answer with a field the form does not have.
    await page.evaluate(() => {
      const orig = window.__TAURI_INTERNALS__.invoke;
      window.__TAURI_INTERNALS__.invoke = async (cmd, args, o) => cmd === "save_settings" ? { ok: false, errors: [{ field: "storage.path", message: "The data folder is not writable." }] } : orig(cmd, args, o);
    });
    await page.click("[data-testid='save']");
    await page.waitForSelector(".form-summary:not([hidden])");
    assert.match(await page.textContent(".form-summary"), /The data folder is not writable/);
  });
});

test("secrets are write-only: 'Set' state, replace/remove/new, and the value never reaches the DOM after saving", async () => {
  await withSettings(async (page) => {
    const secretBox = (p) => `[data-secret="${p}"]`;
    // Stored secrets show as Set with Replace; nothing of the value exists in the page.
    assert.match(await page.textContent(`${secretBox("ringcentral.client_secret")} .secret-set`), /Set/);
    assert.match(await page.textContent(`${secretBox("ringcentral.jwt")} .secret-set`), /Set/);
    const settingsResponses = await page.evaluate(() => JSON.stringify(window.__mock.callsOf("get_settings").map((c) => c.result)));
    assert.ok(!settingsResponses.includes("s3cr3t-client") && !settingsResponses.includes("2abcNGROKtoken"), "get_settings carries no secret");
    const html0 = await page.content();
    assert.ok(!html0.includes("s3cr3t-client") && !html0.includes("eyJhbGciOiJSUzI1NiJ9"));
    // Not set: an empty field.
    assert.equal(await page.inputValue(`${secretBox("ringotel.api_token")} input[type=password]`), "");

    // Replace the client secret, set the Ringotel token, remove the JWT.
    const NEW_SECRET = "N3w-Cl1ent-S3cret-Value";
    const NEW_TOKEN = "ro-T0ken-abcdef123456";
    await page.click(`${secretBox("ringcentral.client_secret")} button:has-text("Replace")`);
    assert.equal(await page.evaluate(() => document.activeElement.type), "password", "focus moves to the new field");
    await page.keyboard.type(NEW_SECRET);
    await page.fill(`${secretBox("ringotel.api_token")} input[type=password]`, NEW_TOKEN);
    await page.click(`${secretBox("ringcentral.jwt")} button:has-text("Remove")`);
    assert.match(await page.textContent(secretBox("ringcentral.jwt")), /Will be removed/);
    assert.match(await page.textContent(".test-note"), /save first/i);
    await page.click("[data-testid='save']");
    await page.waitForSelector(".toast-success");
    const sent = await page.evaluate(() => window.__mock.callsOf("save_settings").at(-1).args.update);
    assert.equal(sent.ringcentral.client_secret, NEW_SECRET);
    assert.equal(sent.ringotel.api_token, NEW_TOKEN);
    assert.equal(sent.ringcentral.jwt, "", "empty string clears");
    assert.equal(sent.tunnel.ngrok_authtoken, null, "unchanged");

    // After saving: Set states, the JWT is now empty, and no secret is anywhere in the DOM.
    assert.match(await page.textContent(`${secretBox("ringcentral.client_secret")} .secret-set`), /Set/);
    assert.match(await page.textContent(`${secretBox("ringotel.api_token")} [data-testid='secret-value']`), /^•+$/, "the Ringotel token is masked");
    assert.equal(await page.inputValue(`${secretBox("ringcentral.jwt")} input[type=password]`), "");
    const values = await page.$$eval("input", (els) => els.map((e) => e.value));
    for (const v of values) assert.ok(!v.includes(NEW_SECRET) && !v.includes(NEW_TOKEN), "no input holds a secret");
    const html = await page.content();
    assert.ok(!html.includes(NEW_SECRET) && !html.includes(NEW_TOKEN), "the DOM never contains a saved secret");
    // The Ringotel token alone is made to be copied into the Ringotel portal: Show and Copy.
    assert.equal(await page.evaluate(() => window.__mock.callsOf("get_ringotel_token").length), 0, "read only when asked for");
    await page.click("button[aria-label='Copy API token']");
    await page.waitForSelector(".toast-success:has-text('API token copied')");
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), NEW_TOKEN);
    assert.match(await page.textContent(`${secretBox("ringotel.api_token")} [data-testid='secret-value']`), /^•+$/, "copying does not show it");
    await page.click("button[aria-label='Show API token']");
    await page.waitForSelector(`${secretBox("ringotel.api_token")} [data-testid='secret-value']:has-text('${NEW_TOKEN}')`);
    assert.equal(await page.getAttribute("button[aria-label='Show API token']", "aria-pressed"), "true");
    await page.click("button[aria-label='Show API token']");
    assert.match(await page.textContent(`${secretBox("ringotel.api_token")} [data-testid='secret-value']`), /^•+$/);
    assert.match(await page.textContent("[data-section='ringotel']"), /Copy it into the Ringotel portal/);
    const text = await page.evaluate(() => document.body.innerText);
    assert.ok(!text.includes(NEW_SECRET));
    const settingsAfter = await page.evaluate(() => JSON.stringify(window.__mock.callsOf("save_settings").at(-1).result));
    assert.ok(!settingsAfter.includes(NEW_SECRET) && !settingsAfter.includes(NEW_TOKEN), "save_settings returns flags only");

    // Replace then cancel keeps the stored value (null in the update).
    await page.click(`${secretBox("ringcentral.client_secret")} button:has-text("Replace")`);
    await page.keyboard.type("typo");
    await page.click(`${secretBox("ringcentral.client_secret")} button:has-text("Cancel")`);
    assert.equal(await page.isDisabled("[data-testid='save']"), true);

    // A malformed JWT is refused client-side.
    await page.fill(`${secretBox("ringcentral.jwt")} input[type=password]`, "not a jwt");
    await page.locator(`${secretBox("ringcentral.jwt")} input[type=password]`).blur();
    assert.match(await errorOf(page, "ringcentral.jwt"), /spaces|JWT/);
  });
});

test("test connection, webhook URL copy, ngrok needs an authtoken", async () => {
  await withSettings(async (page) => {
    await page.click("[data-testid='test-ringcentral']");
    await page.waitForSelector(".test-result.is-ok");
    assert.match(await page.textContent(".test-result"), /Connected as Bay Motors/);
    assert.equal(await page.textContent("[data-webhook='ringotel']"), "https://callpop-baymotors.ngrok.app/api/v1/webhooks/phone_calls_webhooks/ringotel");
    await page.click("button[aria-label='Copy the Ringotel webhook URL']");
    await page.waitForSelector(".toast-success:has-text('Webhook URL copied')");
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), "https://callpop-baymotors.ngrok.app/api/v1/webhooks/phone_calls_webhooks/ringotel");

    // ngrok with its authtoken removed is refused.
    await page.click(`[data-secret="tunnel.ngrok_authtoken"] button:has-text("Remove")`);
    await page.click("[data-testid='save']");
    assert.match(await errorOf(page, "tunnel.ngrok_authtoken"), /authtoken/);
    await page.fill(input("tunnel.ngrok_domain"), "https://x.ngrok.app");
    await page.locator(input("tunnel.ngrok_domain")).blur();
    assert.match(await errorOf(page, "tunnel.ngrok_domain"), /without https/);
    assert.equal(await page.evaluate(() => window.__mock.callsOf("save_settings").length), 0);
    // Data folder is read-only text.
    assert.equal(await page.textContent("[data-testid='data-dir']"), "/home/staff/.local/share/callpop");
  });
});

test("how RingCentral sends calls: Automatic by default, WebSocket chosen and saved", async () => {
  await withSettings(async (page) => {
    const choice = (v) => `${field("ringcentral.transport")} input[value='${v}']`;
    assert.equal(await page.isChecked(choice("auto")), true);
    assert.match(await page.textContent(field("ringcentral.transport")), /no public address or ngrok is needed/);
    assert.match(await page.textContent(field("ringcentral.transport")), /“WebSocket Subscriptions” permission/);
    await page.locator(`${field("ringcentral.transport")} label:has(input[value='websocket'])`).click();
    assert.equal(await page.isDisabled("[data-testid='save']"), false, "a change to save");
    await page.click("[data-testid='save']");
    await page.waitForFunction(() => window.__mock.callsOf("save_settings").length === 1);
    const sent = await page.evaluate(() => window.__mock.callsOf("save_settings").at(-1).args.update);
    assert.equal(sent.ringcentral.transport, "websocket");
    await page.waitForFunction(() => document.querySelector("[data-testid='save']")?.disabled === true);
    assert.equal(await page.isChecked(choice("websocket")), true, "the saved choice is shown");
  });
});
