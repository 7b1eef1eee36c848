// Live updates (call-changed), the detail panel, notification "Open" (open-call), and safety of
// untrusted call data.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appSuite, visibleRows, settled, NOW } from "./harness.mjs";

const { withApp } = appSuite(assert);

function liveCall(id, patch = {}) {
  const started = new Date(NOW - 4000).toISOString();
  return {
    id, provider: "ringcentral", call_key: `live-${id}`, direction: "inbound", state: "ringing", result: null,
    from: "+14085550199", from_e164: "+14085550199", from_name: "Marcus Reed", to: "+14155550100", to_e164: "+14155550100", to_name: null,
    line_label: "Sales", extensions: [{ extension_id: "62001", extension_number: "101", name: "Alice Martin", direction: "inbound", rang: true, answered: false, talk_seconds: 0, state: "ringing" }],
    started_at: started, answered_at: null, ended_at: null, ring_seconds: 0, talk_seconds: 0,
    recording_url: null, voicemail_id: null, voicemail_seconds: null, voicemail_url: null,
    event_count: 1, last_event_at: started, updated_at: started, ...patch,
  };
}

const rowsWithId = (page, id) => page.$$eval(`.row[data-call-id="${id}"]:not([hidden])`, (r) => r.length);

test("live: a new ringing call appears at the top, then updates in place (no duplicate row)", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    const listened = await page.evaluate(() => window.__mock.listeners());
    assert.equal(listened["call-changed"], 1, "the UI listens to call-changed");
    assert.equal(listened["health-changed"], 1);
    assert.equal(listened["open-call"], 1);

    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_001));
    await page.waitForSelector('.row[data-call-id="1000001"]');
    let rows = await visibleRows(page);
    assert.equal(rows[0].id, 1_000_001, "new call at the top");
    assert.equal(rows[0].name, "Marcus Reed");
    assert.equal(rows[0].badge, "Ringing");
    assert.match(rows[0].cls, /is-live/);
    assert.equal(await page.textContent("[data-testid='result-count']"), "1,000+ calls");
    assert.equal(rows[1].id, 1_000_000);

    const answered = new Date(NOW - 1000).toISOString();
    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_001, { state: "connected", result: "answered", answered_at: answered, ring_seconds: 3, updated_at: answered, extensions: [{ extension_id: "62001", extension_number: "101", name: "Alice Martin", direction: "inbound", rang: true, answered: true, talk_seconds: 0, state: "connected" }] }));
    await page.waitForFunction(() => document.querySelector('.row[data-call-id="1000001"] .badge')?.textContent === "On call");
    rows = await visibleRows(page);
    assert.equal(rows[0].id, 1_000_001, "still in the same place");
    assert.equal(await rowsWithId(page, 1_000_001), 1, "no duplicate row");
    assert.equal(await page.textContent("[data-testid='result-count']"), "1,000+ calls");
    assert.equal(await page.textContent('.row[data-call-id="1000001"] .ext-main'), "Alice Martin");

    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_001, { state: "ended", result: "answered", answered_at: answered, ended_at: new Date(NOW).toISOString(), ring_seconds: 3, talk_seconds: 95, updated_at: new Date(NOW).toISOString() }));
    await page.waitForFunction(() => document.querySelector('.row[data-call-id="1000001"] .badge')?.textContent === "Answered");
    assert.equal(await page.textContent('.row[data-call-id="1000001"] .when-dur'), "Talk 1:35");
    assert.equal(await rowsWithId(page, 1_000_001), 1);
  });
});

test("live: a call that rings while the first page is on its way is not lost", async () => {
  await withApp({ mock: { latency: 1500 }, waitForRows: false }, async (page) => {
    // The page is being read; the call is stored just after, so only its event tells of it.
    await page.waitForFunction(() => window.__mock.callsOf("list_calls").length === 1 && window.__mock.listeners()["call-changed"] === 1);
    await page.evaluate((c) => window.__mock.emit("call-changed", c), liveCall(1_000_001));
    await settled(page);
    assert.equal(await rowsWithId(page, 1_000_001), 1);
    assert.match(await page.textContent(`.row[data-call-id="1000001"]`), /Marcus Reed/);
  });
});

test("the Line column: the line's label, else the public number dialled, never an extension", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    const lines = [
      liveCall(1_000_031, { line_label: null, to: "+14155550100", to_e164: "+14155550100" }),
      liveCall(1_000_032, { line_label: null, to: "201", to_e164: null }),
      liveCall(1_000_033),
    ];
    for (const c of lines) await page.evaluate((c) => window.__mock.pushCall(c), c);
    await page.waitForSelector('.row[data-call-id="1000033"]');
    const line = (id) => page.$eval(`.row[data-call-id="${id}"] .c-line`, (e) => e.textContent.trim());
    assert.equal(await line(1_000_031), "+1 415 555 0100");
    assert.equal(await line(1_000_032), "", "an extension is a desk, not a line");
    assert.equal(await line(1_000_033), "Sales");
  });
});

test("live: new calls while scrolled down keep the scroll position and offer a 'new calls' pill", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    await page.$eval(".list-viewport", (v) => { v.scrollTop = 56 * 60; });
    await settled(page);
    const before = await visibleRows(page);
    const top = await page.$eval(".list-viewport", (v) => v.scrollTop);
    const firstInView = before.find((r) => r.y >= top);

    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_002));
    await page.waitForSelector(".new-pill:not([hidden])");
    await settled(page);
    const after = await page.$eval(".list-viewport", (v) => v.scrollTop);
    assert.equal(after, top + 56, "scroll offset moved by exactly one row");
    const rows = await visibleRows(page);
    const stillFirst = rows.find((r) => r.y >= after);
    assert.equal(stillFirst.id, firstInView.id, "the same call is still first in view");
    assert.match(await page.textContent(".new-pill"), /1 new call/);

    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_003, { started_at: new Date(NOW - 2000).toISOString() }));
    await page.waitForFunction(() => document.querySelector(".new-pill").textContent.includes("2 new calls"));
    await page.click(".new-pill");
    await page.waitForSelector(".new-pill", { state: "hidden" });
    await settled(page);
    const topRows = await visibleRows(page);
    assert.deepEqual(topRows.slice(0, 3).map((r) => r.id), [1_000_003, 1_000_002, 1_000_000]);
  });
});

test("live: a call reported late (older than the top rows) is inserted at its place, not lost", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    const t = await page.evaluate(() => (window.__mock.startedMs(2) + window.__mock.startedMs(3)) / 2);
    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_050, { started_at: new Date(t).toISOString(), state: "connected", result: "answered", answered_at: new Date(t + 5000).toISOString() }));
    await page.waitForSelector('.row[data-call-id="1000050"]');
    const rows = await visibleRows(page);
    assert.deepEqual(rows.slice(0, 5).map((r) => r.id), [1_000_000, 999_999, 999_998, 1_000_050, 999_997]);
    assert.equal(rows[3].badge, "On call");
    assert.equal(await page.textContent("[data-testid='result-count']"), "1,000+ calls");
    for (let i = 0; i < rows.length; i++) assert.equal(Math.round(rows[i].y / 56), i, "rows stay contiguous");
  });
});

test("live: with a filter active, only matching new calls are added (engine decides)", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    await page.selectOption("select[aria-label='Result']", "missed");
    await settled(page);
    // A ringing call does not match "missed" yet.
    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_010));
    await page.waitForFunction(() => window.__mock.callsOf("list_calls").at(-1).args.query.limit < 100);
    await settled(page);
    assert.equal(await rowsWithId(page, 1_000_010), 0);
    // It ends unanswered: now it is a missed call and shows up at the top.
    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_010, { state: "ended", result: "missed", ended_at: new Date(NOW).toISOString(), ring_seconds: 25, updated_at: new Date(NOW).toISOString() }));
    await page.waitForSelector('.row[data-call-id="1000010"]');
    const rows = await visibleRows(page);
    assert.equal(rows[0].id, 1_000_010);
    assert.equal(rows[0].badge, "Missed");
    assert.match(rows[0].cls, /is-missed/);
  });
});

test("detail panel: facts, timeline, raw deliveries (pretty JSON, collapsible), call back and media links", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    // Find an answered call with a recording and a voicemail among the first rows.
    const ids = await page.evaluate(() => {
      const m = window.__mock;
      let rec = null, vm = null;
      for (let i = 0; i < 140 && (!rec || !vm); i++) {
        const c = m.baseCall(i);
        if (!rec && c.recording_url) rec = c.id;
        if (!vm && c.voicemail_url) vm = c.id;
      }
      return { rec, vm };
    });
    await page.$eval(".list-viewport", (v, id) => { v.scrollTop = (1_000_000 - id) * 56; }, ids.rec);
    await page.click(`.row[data-call-id="${ids.rec}"]`);
    await page.waitForSelector(".detail [data-section='timeline'] .timeline");
    const expected = await page.evaluate((id) => window.__mock.detail(id), ids.rec);
    const name = expected.call.from_name ?? expected.call.to_name;
    if (expected.call.direction !== "internal") assert.equal(await page.textContent(".detail-title"), name ?? await page.textContent(".detail-title"));
    assert.equal(await page.$$eval(".detail .timeline > li", (l) => l.length), expected.timeline.length);
    // Ids and raw deliveries are for support: folded under "Advanced" until asked for.
    assert.equal(await page.getAttribute(".detail [data-testid='advanced']", "open"), null);
    assert.equal(await page.isVisible(".detail [data-section='deliveries']"), false);
    assert.doesNotMatch(await page.textContent(".detail .timeline"), /\bp\d|party/i, "no party ids in the timeline");
    await page.click(".detail [data-testid='advanced'] > summary");
    await page.waitForSelector(".detail [data-section='deliveries']");
    assert.match(await page.textContent(".detail [data-testid='advanced']"), new RegExp(expected.call.call_key));
    assert.equal(await page.$$eval(".detail .delivery", (l) => l.length), expected.deliveries.length);
    assert.equal(await page.textContent(".detail [data-section='deliveries'] h3 .count"), String(expected.deliveries.length));
    const href = await page.getAttribute(".detail [data-kind='recording']", "href");
    assert.equal(href, expected.call.recording_url);
    if (expected.call.direction !== "internal") {
      const party = expected.call.direction === "outbound" ? expected.call.to_e164 : expected.call.from_e164;
      await page.click(".detail [data-action='call-back']");
      await page.waitForSelector(".toast-success:has-text('with your phone app')");
      assert.equal(await page.evaluate(() => window.__mock.callsOf("open_link").at(-1).args.url), `tel:${party}`);
    }
    // Deliveries are collapsed until opened; then pretty-printed JSON.
    assert.equal(await page.$$eval(".detail .delivery[open]", (l) => l.length), 0);
    assert.equal(await page.$$eval(".detail .json", (l) => l.length), 0, "bodies are rendered lazily");
    await page.click(".detail .delivery:first-child summary");
    await page.waitForSelector(".detail .delivery[open] .json");
    const json = await page.textContent(".detail .delivery[open] .json");
    assert.equal(json, JSON.stringify(JSON.parse(expected.deliveries[0].body), null, 2));
    assert.ok(await page.$(".detail .delivery[open] .json .j-key"), "syntax coloured");
    await page.click(".detail .delivery:first-child summary");
    await page.waitForSelector(".detail .delivery[open]", { state: "detached" });

    // Voicemail link on a voicemail call; keyboard focus stays usable; close button.
    await page.$eval(".list-viewport", (v, id) => { v.scrollTop = (1_000_000 - id) * 56; }, ids.vm);
    await page.click(`.row[data-call-id="${ids.vm}"]`);
    await page.waitForSelector(".detail [data-kind='voicemail']");
    const provider = await page.evaluate((id) => window.__mock.findCall(id).provider, ids.vm);
    if (provider === "ringcentral") {
      // RingCentral's audio needs CallPop's sign-in: played through the engine, not a link.
      assert.match(await page.textContent(".detail [data-kind='voicemail']"), /Play voicemail/);
      await page.click(".detail [data-kind='voicemail']");
      await page.waitForSelector(".toast-success:has-text('Playing the voicemail')");
      assert.deepEqual(await page.evaluate(() => window.__mock.callsOf("play_voicemail").at(-1).args), { id: ids.vm });
    } else {
      assert.match(await page.getAttribute(".detail [data-kind='voicemail']", "href"), /voicemail/);
    }
    assert.match(await page.textContent(".detail .detail-status .badge"), /Voicemail/);
    await page.click(".detail-close");
    await page.waitForSelector(".detail", { state: "hidden" });
  });
});

test("open-call event (notification 'Open') shows a call even deep in the history; untrusted names stay text", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    await page.click("#tab-health");
    const target = await page.evaluate(() => {
      for (let i = 5000; i < 400000; i++) {
        const c = window.__mock.baseCall(i);
        if (c.direction === "inbound" && c.from_name && c.from_name.includes("<img")) return c;
      }
      return null;
    });
    assert.ok(target, "fixture has a caller name with markup");
    await page.evaluate((id) => window.__mock.emit("open-call", id), target.id);
    await page.waitForSelector(".detail:not([hidden]) .detail-title");
    assert.equal(await page.getAttribute("#tab-log", "aria-selected"), "true", "switched to the call log");
    await page.waitForSelector(".detail [data-section='timeline']");
    const title = await page.textContent(".detail-title");
    assert.ok(title.includes("<img src=x"), "markup shown as text");
    assert.ok(!title.includes("\u202E"), "bidi override stripped");
    assert.equal(await page.$$eval(".detail img, .row img", (i) => i.length), 0, "no element created from call data");
    assert.equal(await page.evaluate(() => window.__xss ?? null), null);
  });
});

test("call back without a phone app says so and copies the number to dial by hand", async () => {
  await withApp({ mock: { telHandler: false } }, async (page) => {
    await settled(page);
    const [id, e164] = await page.evaluate(() => {
      for (let i = 1; i < 5000; i++) {
        const c = window.__mock.baseCall(i);
        if (c.direction === "inbound" && c.from_e164) return [c.id, c.from_e164];
      }
      return [null, null];
    });
    await page.evaluate((id) => window.__mock.emit("open-call", id), id);
    await page.waitForSelector(".detail [data-action='call-back']");
    await page.click(".detail [data-action='call-back']");
    await page.waitForSelector(".toast-info:has-text('No phone app on this computer')");
    assert.match(await page.textContent(".toast-info"), /is copied: dial it on your desk phone/);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), e164);
    assert.equal(await page.isEnabled(".detail [data-action='call-back']"), true, "ready to try again");
  });
});

test("the detail panel refreshes when its call changes live", async () => {
  await withApp({}, async (page) => {
    await settled(page);
    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_020));
    await page.click('.row[data-call-id="1000020"]');
    await page.waitForSelector(".detail [data-section='timeline']");
    assert.match(await page.textContent(".detail .detail-status .badge"), /Ringing/);
    const n = await page.evaluate(() => window.__mock.callsOf("get_call").length);
    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_020, { state: "ended", result: "missed", ring_seconds: 30, ended_at: new Date(NOW).toISOString(), updated_at: new Date(NOW).toISOString() }));
    await page.waitForFunction(() => document.querySelector(".detail .detail-status .badge")?.textContent.includes("Missed"));
    await page.waitForFunction((k) => window.__mock.callsOf("get_call").length > k, n);
  });
});

test("a ringing call costs no CPU while it waits: no animation runs for ever", async () => {
  await withApp({ reducedMotion: "no-preference" }, async (page) => {
    await settled(page);
    // A long history with nothing loading: no spinner turns below the last row.
    assert.match(await page.textContent(".list-footer"), /Scroll for more calls/);
    assert.deepEqual(await page.evaluate(() => document.getAnimations().filter((a) => a.effect.getComputedTiming().iterations === Infinity).map((a) => a.animationName)), []);
    await page.evaluate((c) => window.__mock.pushCall(c), liveCall(1_000_002));
    await page.waitForSelector('.row[data-call-id="1000002"]');
    // Only a busy spinner may turn for ever, and it moves ten times a second, not every frame.
    const endless = await page.evaluate(() => document.getAnimations()
      .filter((a) => a.effect.getComputedTiming().iterations === Infinity)
      .map((a) => ({ name: a.animationName, easing: a.effect.getKeyframes()[0]?.easing, where: a.effect.target?.className })));
    for (const a of endless) {
      assert.equal(a.name, "spin", `endless animations repaint every frame: ~90 % of a core without a GPU: ${JSON.stringify(endless)}`);
      assert.match(a.easing ?? "", /steps\(8/, JSON.stringify(a));
    }
    // The ring pulses a few times, then rests.
    const pulse = await page.evaluate(() => document.getAnimations().filter((a) => a.animationName === "ring-pulse").map((a) => a.effect.getComputedTiming().iterations));
    assert.ok(pulse.length >= 1 && pulse.every((n) => n <= 3), JSON.stringify(pulse));
  });
});

test("the detail panel never scrolls sideways, at 1024×600 with its Advanced part open", async () => {
  await withApp({ viewport: { width: 1024, height: 600 } }, async (page) => {
    await settled(page);
    const wide = [];
    for (let i = 1; i <= 30; i++) {
      await page.evaluate((id) => window.__mock.emit("open-call", id), 1_000_000 - i);
      await page.waitForSelector(".detail [data-section='timeline']");
      if (i === 1) await page.click(".detail [data-testid='advanced'] > summary");
      await page.evaluate(() => document.querySelectorAll(".detail details.delivery").forEach((d) => { d.open = true; }));
      wide.push(...await page.evaluate((n) => [...document.querySelectorAll(".detail, .detail *")]
        .filter((e) => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1 && !["auto", "scroll"].includes(getComputedStyle(e).overflowX) && getComputedStyle(e).overflowX !== "visible")
        .map((e) => `call ${n}: ${e.className} ${e.scrollWidth}>${e.clientWidth}`), i));
      const body = await page.evaluate(() => { const d = document.querySelector(".detail"); return d.scrollWidth - d.clientWidth; });
      assert.ok(body <= 1, `call ${i}: the panel scrolls sideways by ${body}px`);
    }
    assert.deepEqual(wide, [], "no clipped content");
  });
});
