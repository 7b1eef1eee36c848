// Call log: search, filters, virtualized keyset paging through a 1,000,000-call history, keyboard.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appSuite, visibleRows, settled } from "./harness.mjs";

const { withApp } = appSuite(assert);

const countText = (page) => page.textContent("[data-testid='result-count']");
const lastQuery = (page) => page.evaluate(() => window.__mock.callsOf("list_calls").at(-1).args.query);

test("first page: newest first, a capped count (1,000+), only a page requested, rows formatted", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    assert.equal(await countText(page), "1,000+ calls");
    const calls = await page.evaluate(() => window.__mock.callsOf("list_calls").map((c) => c.args.query));
    assert.equal(calls.length, 1, "one request for the first screen");
    assert.ok(calls[0].limit > 0 && calls[0].limit <= 500, "paged, never everything");
    assert.equal(calls[0].cursor, null);
    const rows = await visibleRows(page);
    assert.equal(rows[0].id, 1_000_000, "newest call first");
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i].id < rows[i - 1].id, "descending");
    // E.164 formatting: +1 NXX NXX XXXX or +61 4XX XXX XXX
    const numbers = rows.map((r) => r.number).filter((n) => n.startsWith("+"));
    assert.ok(numbers.length > 3);
    for (const n of numbers) assert.match(n, /^\+(1 \d{3} \d{3} \d{4}|61 \d{3} \d{3} \d{3})$/);
    // Line labels and relative times.
    const first = await page.$eval(".row[data-call-id]", (r) => r.querySelector(".when-time").textContent);
    assert.match(first, /min ago|Just now/);
    const labels = await page.$$eval(".row .pill:not([hidden])", (els) => els.map((e) => e.textContent));
    assert.ok(labels.some((l) => ["Sales", "Service", "Parts"].includes(l)), "line labels shown");
  });
});

test("search: a number fragment in another format finds the call and the count updates (debounced)", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    const before = await page.evaluate(() => window.__mock.callsOf("list_calls").length);
    await page.click("[data-testid='search']");
    await page.keyboard.type("(415) 555-01", { delay: 15 });
    await page.waitForFunction(() => document.querySelector("[data-testid='result-count']").textContent.includes("matching"));
    await settled(page);
    const searches = await page.evaluate((n) => window.__mock.callsOf("list_calls").slice(n).map((c) => c.args.query.search), before);
    assert.ok(searches.length <= 3, `typing is debounced (${searches.length} requests for 12 keystrokes)`);
    assert.equal(searches.at(-1), "(415) 555-01");
    const count = await countText(page);
    const n = Number(count.match(/^[\d,]+/)[0].replace(/,/g, ""));
    assert.ok(n > 0 && n < 1_000_000, `count narrowed: ${count}`);
    const rows = await visibleRows(page);
    assert.ok(rows.some((r) => r.name === "Jane Cooper" && r.number === "+1 415 555 0123"), "stored as +14155550123, found by (415) 555-01");
    for (const r of rows) {
      const digits = (r.number + " " + r.name).replace(/\D/g, "");
      assert.ok(digits.includes("41555501") || r.cls.includes("skeleton"), `row matches: ${r.name} ${r.number}`);
    }

    // A national-format fragment of an Australian mobile (stored +614…, typed 04…).
    const au = await page.evaluate(() => {
      for (let k = 0; k < 4000; k++) { const c = window.__mock.customer(k); if (c.e164.startsWith("+614")) return c; }
      return null;
    });
    const national = "0" + au.e164.slice(3);
    await page.fill("[data-testid='search']", `${national.slice(0, 4)} ${national.slice(4, 7)} ${national.slice(7)}`);
    await page.waitForFunction((q) => document.querySelector("[data-testid='result-count']").textContent.includes(q), national.slice(0, 4));
    await settled(page);
    const auRows = await visibleRows(page);
    assert.ok(auRows.length > 0);
    const pretty = `+61 ${au.e164.slice(3, 6)} ${au.e164.slice(6, 9)} ${au.e164.slice(9)}`;
    assert.ok(auRows.some((r) => r.number === pretty || r.name === pretty), `found ${pretty}`);

    // Names too, and Escape clears the search.
    await page.fill("[data-testid='search']", "jane coo");
    await page.waitForFunction(() => document.querySelector("[data-testid='result-count']").textContent.includes("jane coo"));
    await settled(page);
    const named = await visibleRows(page);
    assert.ok(named.length > 0 && named.every((r) => r.name === "Jane Cooper"));
    await page.focus("[data-testid='search']");
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => document.querySelector("[data-testid='result-count']").textContent === "1,000+ calls");
  });
});

test("filters: result, direction, extension and date ranges narrow the query and the rows", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    await page.selectOption("select[aria-label='Result']", "missed");
    await page.waitForFunction(() => window.__mock.callsOf("list_calls").at(-1).args.query.result === "missed");
    await settled(page);
    let rows = await visibleRows(page);
    assert.ok(rows.length > 5);
    assert.ok(rows.every((r) => r.badge === "Missed"), "only missed calls");
    assert.match(await countText(page), /^[\d,]+\+? calls?$/);
    assert.ok(await page.isVisible("text=Clear filters"));

    await page.selectOption("select[aria-label='Direction']", "inbound");
    await settled(page);
    const q = await lastQuery(page);
    assert.equal(q.result, "missed");
    assert.equal(q.direction, "inbound");
    const dirs = await page.$$eval(".row[data-call-id]:not([hidden]) .c-dir", (els) => els.map((e) => e.className));
    assert.ok(dirs.every((c) => c.includes("dir-inbound")));

    await page.fill("input[aria-label='Extension']", "201");
    await page.waitForFunction(() => window.__mock.callsOf("list_calls").at(-1).args.query.extension === "201");
    await settled(page);
    const ext = await page.$$eval(".row[data-call-id]:not([hidden])", (els) => els.map((e) => e.querySelector(".c-ext").title));
    assert.ok(ext.length > 0 && ext.every((t) => t.includes("201")), "every row involves extension 201");

    await page.click("text=Clear filters");
    await page.waitForFunction(() => document.querySelector("[data-testid='result-count']").textContent === "1,000+ calls");

    // Today = since local midnight (Los Angeles), and every row is from today.
    await page.selectOption("select[aria-label='Date range']", "today");
    await settled(page);
    assert.equal((await lastQuery(page)).since, "2026-11-23T08:00:00.000Z");
    const todayCount = Number((await countText(page)).replace(/\D/g, ""));
    assert.ok(todayCount > 100 && todayCount < 2000, `today: ${todayCount}`);
    const times = await page.$$eval(".row[data-call-id]:not([hidden]) .when-time", (els) => els.map((e) => e.textContent));
    assert.ok(times.every((t) => /ago|Just now/.test(t)));

    await page.selectOption("select[aria-label='Date range']", "7d");
    await settled(page);
    assert.equal((await lastQuery(page)).since, "2026-11-17T08:00:00.000Z");
    await page.selectOption("select[aria-label='Date range']", "30d");
    await settled(page);
    assert.equal((await lastQuery(page)).since, "2026-10-25T07:00:00.000Z", "DST-aware local midnight 29 days back");

    // Custom: inclusive until (next local midnight); an inverted range is refused inline.
    await page.selectOption("select[aria-label='Date range']", "custom");
    await page.fill("input[aria-label='From date']", "2026-11-01");
    await page.fill("input[aria-label='To date']", "2026-11-02");
    await page.waitForFunction(() => window.__mock.callsOf("list_calls").at(-1).args.query.until === "2026-11-03T08:00:00.000Z");
    await settled(page);
    const q2 = await lastQuery(page);
    assert.equal(q2.since, "2026-11-01T07:00:00.000Z");
    const rows2 = await visibleRows(page);
    assert.ok(rows2.length > 0);
    const n = await page.evaluate(() => window.__mock.callsOf("list_calls").length);
    await page.fill("input[aria-label='From date']", "2026-11-05");
    await page.waitForSelector(".custom-range .field-error:not([hidden])");
    assert.match(await page.textContent(".custom-range .field-error"), /start date is after the end date/i);
    assert.equal(await page.evaluate(() => window.__mock.callsOf("list_calls").length), n, "no query for an inverted range");
  });
});

test("virtualized list: scrolls deep into 1M calls with cursor pages, DOM stays small, evicted pages come back", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    const rowH = await page.$eval(".row[data-call-id]", (r) => r.getBoundingClientRect().height);
    // Scroll to the end of what is loaded, over and over: each time the next page is requested.
    for (let i = 0; i < 40; i++) {
      const n = await page.evaluate(() => window.__mock.callsOf("list_calls").length);
      await page.$eval(".list-viewport", (v) => { v.scrollTop = v.scrollHeight; });
      await page.waitForFunction((k) => window.__mock.callsOf("list_calls").length > k, n);
    }
    await page.waitForFunction(() => !document.querySelector(".list-footer.footer-loading") || window.__mock.callsOf("list_calls").length > 40);
    await settled(page);

    const log = await page.evaluate(() => window.__mock.callsOf("list_calls").map((c) => ({ cursor: c.args.query.cursor, next: c.result?.next_cursor })));
    assert.ok(log.length >= 41);
    // Every paged request uses the next_cursor of the page before it, in order.
    for (let i = 1; i < log.length; i++) assert.equal(log[i].cursor, log[i - 1].next, `request ${i} continues from page ${i - 1}`);

    const state = await page.evaluate(() => {
      const v = document.querySelector(".list-viewport");
      return { top: v.scrollTop, height: v.scrollHeight, rows: document.querySelectorAll(".vlist-spacer > .row").length, visible: document.querySelectorAll(".vlist-spacer > .row:not([hidden])").length };
    });
    assert.ok(state.top > 40 * 100 * rowH, `scrolled deep: ${state.top}px`);
    assert.ok(state.rows < 80, `DOM row elements stay few (${state.rows})`);
    const rows = await visibleRows(page);
    assert.ok(rows.length > 5 && rows.length < 60);
    // Row at position p is call id 1,000,000 - p (no filters): positions and data agree.
    for (const r of rows) assert.equal(r.id, 1_000_000 - Math.round(r.y / rowH), "row shows the call of its position");
    const deepest = rows.at(-1).id;
    assert.ok(deepest < 1_000_000 - 5000, `reached call ${deepest}`);

    // Jump back to the top: pages dropped from memory are fetched again with their own cursor.
    const before = log.length;
    await page.$eval(".list-viewport", (v) => { v.scrollTop = 5 * 150 * 56 + 20 * 56; });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.waitForFunction((h) => {
      const rows = [...document.querySelectorAll(".vlist-spacer > .row:not([hidden])")];
      return rows.length > 5 && rows.every((r) => r.dataset.callId && !r.classList.contains("row-skeleton") && Math.abs(Number(r.dataset.callId) - (1_000_000 - Math.round(new DOMMatrixReadOnly(getComputedStyle(r).transform).m42 / h))) < 1);
    }, rowH);
    const mid = await visibleRows(page);
    for (const r of mid) assert.equal(r.id, 1_000_000 - Math.round(r.y / rowH));
    const refetch = await page.evaluate((n) => window.__mock.callsOf("list_calls").slice(n).map((c) => c.args.query.cursor), before);
    assert.ok(refetch.length >= 1 && refetch.every((c) => typeof c === "string"), "evicted page re-fetched by cursor");
    await page.$eval(".list-viewport", (v) => { v.scrollTop = 0; });
    await page.waitForFunction(() => [...document.querySelectorAll(".row[data-call-id]:not([hidden])")].some((r) => r.dataset.callId === "1000000"));
    assert.equal((await visibleRows(page))[0].id, 1_000_000);
  });
});

test("keyboard: arrows move the selection, Enter opens the detail, Escape closes it, / focuses search", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    await page.keyboard.press("/");
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "search");
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute("role")), "listbox");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    const active = await page.$eval(".row.is-active", (r) => r.dataset.callId);
    assert.equal(active, "999998");
    const desc = await page.$eval(".list-viewport", (v) => v.getAttribute("aria-activedescendant"));
    assert.equal(await page.$eval(`#${desc}`, (r) => r.dataset.callId), "999998");
    await page.keyboard.press("Enter");
    await page.waitForSelector(".detail:not([hidden]) .detail-title");
    await page.waitForSelector(".detail [data-section='timeline']");
    const title = await page.textContent(".detail .detail-title");
    assert.equal(title, await page.$eval(".row.is-active .who-name", (e) => e.textContent));
    // The panel follows the selection.
    await page.keyboard.press("ArrowDown");
    await page.waitForFunction(() => document.querySelector(".row.is-open")?.dataset.callId === "999997");
    await page.keyboard.press("PageDown");
    const afterPage = Number(await page.$eval(".row.is-active", (r) => r.dataset.callId));
    assert.ok(afterPage < 999990);
    await page.keyboard.press("Escape");
    await page.waitForSelector(".detail", { state: "hidden" });
    await page.keyboard.press("Home");
    assert.equal(await page.$eval(".row.is-active", (r) => r.dataset.callId), "1000000");
    // Ctrl+2 / Ctrl+3 / Ctrl+1 switch tabs.
    await page.keyboard.press("Control+2");
    assert.equal(await page.getAttribute("#tab-settings", "aria-selected"), "true");
    await page.keyboard.press("ArrowRight");
    assert.equal(await page.getAttribute("#tab-health", "aria-selected"), "true");
    await page.keyboard.press("Control+1");
    assert.equal(await page.getAttribute("#tab-log", "aria-selected"), "true");
  });
});

test("export: a dialog chooses the folder (remembered), writes local dates, then offers Open and Show in folder", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    await page.selectOption("select[aria-label='Result']", "voicemail");
    await settled(page);
    await page.click("[data-testid='export']");
    const dialog = "[data-testid='export-dialog']";
    await page.waitForSelector(dialog);
    assert.match(await page.textContent(dialog), /[\d,]+\+? calls matching your filters/);
    assert.equal(await page.isChecked(`${dialog} input[value='/home/staff/Downloads']`), true, "Downloads by default");
    await page.check(`${dialog} input[value='/home/staff/Documents']`);
    await page.click("[data-testid='export-go']");
    await page.waitForSelector("[data-testid='export-done']");
    assert.match(await page.textContent("[data-testid='export-done']"), /Exported [\d,]+ calls/);
    assert.match(await page.textContent(dialog), /\/home\/staff\/Documents\/callpop-calls-2026-11-23-101500\.csv/);
    const req = await page.evaluate(() => window.__mock.callsOf("export_csv").at(-1).args.request);
    assert.equal(req.query.result, "voicemail");
    assert.equal(req.query.limit, 0);
    assert.equal(req.query.cursor, null);
    assert.equal(req.folder, "/home/staff/Documents");
    assert.deepEqual(req.dates, { order: "mdy", hour12: true }, "en-US writes 12/31/2026 2:05 PM");
    await page.click("[data-testid='export-open']");
    await page.click("[data-testid='export-show']");
    const opened = await page.evaluate(() => ["open_export", "show_export"].map((c) => window.__mock.callsOf(c).at(-1).args.path));
    assert.deepEqual(opened, Array(2).fill("/home/staff/Documents/callpop-calls-2026-11-23-101500.csv"));
    await page.click(`${dialog} button:has-text('Done')`);
    await page.waitForSelector(dialog, { state: "detached" });

    // The folder is remembered; a bad typed folder is explained in the dialog, nothing lost.
    await page.click("[data-testid='export']");
    await page.waitForSelector(dialog);
    assert.equal(await page.isChecked(`${dialog} input[value='/home/staff/Documents']`), true, "the last folder is remembered");
    await page.fill(`${dialog} input[aria-label='Folder']`, "Desktop");
    await page.click("[data-testid='export-go']");
    await page.waitForSelector(`${dialog} [role='alert']:has-text('choose a full folder path')`);
    await page.evaluate(() => window.__mock.failNext("export_csv", "disk full"));
    await page.fill(`${dialog} input[aria-label='Folder']`, "/mnt/usb");
    await page.click("[data-testid='export-go']");
    await page.waitForSelector(`${dialog} [role='alert']:has-text('disk full')`);
    await page.keyboard.press("Escape");
    await page.waitForSelector(dialog, { state: "detached" });

    await page.evaluate(() => window.__mock.failNext("list_calls", "database is locked"));
    await page.selectOption("select[aria-label='Direction']", "outbound");
    await page.waitForSelector(".toast-error");
    assert.match(await page.textContent(".toast-error"), /database is locked/);
    assert.ok((await visibleRows(page)).length > 0, "the previous rows stay");
  });
});

test("starting at sign-in: the log says what is at stake and turns it on in one click, or stays away once dismissed", async () => {
  await withApp({ mock: { autostart: false } }, async (page) => {
    await settled(page);
    const hint = "[data-testid='autostart-hint']";
    await page.waitForSelector(hint);
    assert.match(await page.textContent(hint), /does not start when you sign in/);
    await page.click(`${hint} button:has-text('Start when I sign in')`);
    await page.waitForSelector(".toast-success:has-text('CallPop will start when you sign in')");
    const sent = await page.evaluate(() => window.__mock.callsOf("save_settings").at(-1).args.update);
    assert.equal(sent.general.autostart, true);
    assert.equal(sent.ringotel.api_token, null, "nothing else is changed");
    await page.waitForSelector(hint, { state: "hidden" });
  });
  await withApp({ mock: { autostart: false } }, async (page) => {
    await settled(page);
    await page.waitForSelector("[data-testid='autostart-hint']");
    await page.click("[data-testid='autostart-hint'] button[aria-label=\"Don't show this again\"]");
    await page.waitForSelector("[data-testid='autostart-hint']", { state: "hidden" });
    assert.equal(await page.evaluate(() => localStorage.getItem("callpop.autostart-hint-dismissed")), "1");
    assert.equal(await page.evaluate(() => window.__mock.callsOf("save_settings").length), 0);
  });
});

test("a failed next page shows a Retry line and a toast; Retry continues from the same cursor", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    await page.evaluate(() => window.__mock.failNext("list_calls", "engine busy"));
    await page.$eval(".list-viewport", (v) => { v.scrollTop = v.scrollHeight; });
    await page.waitForSelector(".list-footer.footer-error");
    assert.match(await page.textContent(".list-footer"), /Couldn't load more calls/);
    await page.waitForSelector(".toast-error:has-text('engine busy')");
    const failed = await page.evaluate(() => window.__mock.callsOf("list_calls").at(-1).args.query.cursor);
    await page.click(".list-footer >> text=Retry");
    await page.waitForSelector(".list-footer.footer-loading, .list-footer:not(.footer-error)");
    await page.waitForFunction(() => window.__mock.callsOf("list_calls").at(-1).result?.n === 150);
    assert.equal(await page.evaluate(() => window.__mock.callsOf("list_calls").at(-1).args.query.cursor), failed);
  });
});

test("empty result shows a helpful empty state", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    await page.fill("[data-testid='search']", "zzzz-no-such-caller");
    await page.waitForSelector(".list-empty:not([hidden])");
    assert.match(await page.textContent(".list-empty"), /No calls match/);
    assert.match(await countText(page), /^0 calls/);
    await page.click(".list-empty >> text=Clear filters");
    await page.waitForFunction(() => document.querySelector("[data-testid='result-count']").textContent === "1,000+ calls");
  });
});

test("total may be null: the count shows what is loaded with a +", async () => {
  await withApp({ mock: { totalNull: true } }, async (page) => {
    await settled(page);
    assert.match(await countText(page), /^150\+ calls$/);
  });
});
