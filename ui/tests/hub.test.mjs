// The Hub tab: a standalone desk finds and joins a hub (and is told when the code is wrong),
// leaves it; a hub adds a desk (code, address, identity) and removes one; a desk shows its link.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appSuite } from "./harness.mjs";

const { withApp } = appSuite(assert);

async function openHub(page) {
  await page.click("#tab-hub");
  await page.waitForSelector("#panel-hub:not([hidden]) .card");
}

test("standalone: find the hub on the network, a wrong code is said plainly, the right one joins", async () => {
  await withApp({}, async (page) => {
    await openHub(page);
    assert.match(await page.textContent("#panel-hub"), /Join the dealership's hub/);
    await page.click("[data-testid='find-hubs']");
    await page.waitForSelector("[data-testid='found-hub']");
    assert.match(await page.textContent("[data-testid='found-hub']"), /Reception.*192\.168\.1\.10:8788.*4791-58D8-F767-8105/);
    await page.click("[data-testid='found-hub']");
    assert.equal(await page.inputValue("[data-testid='join-address']"), "192.168.1.10:8788", "choosing a hub fills its address");
    await page.fill("[data-testid='join-code']", "K7M2Q-9XH4X");
    await page.fill("[data-testid='join-name']", "Sales 3");
    await page.click("[data-testid='join-hub']");
    await page.waitForSelector(".toast", { state: "visible" });
    assert.match(await page.textContent(".toast"), /does not match/);
    assert.match(await page.textContent("#panel-hub"), /Join the dealership's hub/, "still standalone");
    // Typed as people type it: lower case, without the dash.
    await page.fill("[data-testid='join-code']", "k7m2q 9xh4p");
    await page.click("[data-testid='join-hub']");
    await page.waitForSelector("[data-testid='link'][data-state='connected']");
    assert.match(await page.textContent("#panel-hub"), /gets its calls from the hub “Reception”/);
    assert.match(await page.textContent("#panel-hub"), /as “Sales 3”/);
    const join = await page.evaluate(() => window.__mock.callsOf("join_hub")[1].args.request);
    assert.deepEqual(join, { address: "192.168.1.10:8788", code: "k7m2q 9xh4p", name: "Sales 3" });
  });
});

test("standalone with no hub answering says to type the address", async () => {
  await withApp({ mock: { foundHubs: [] } }, async (page) => {
    await openHub(page);
    await page.click("[data-testid='find-hubs']");
    await page.waitForSelector("[data-testid='found-hubs'] .card-note");
    assert.match(await page.textContent("[data-testid='found-hubs']"), /No hub answered.*Type the hub's address/);
  });
});

test("a hub adds a desk with a code to type and removes a desk after asking", async () => {
  await withApp({}, async (page) => {
    await openHub(page);
    await page.click("[data-testid='become-hub']");
    await page.waitForSelector("[data-testid='desks']");
    assert.match(await page.textContent("#panel-hub"), /This PC is the hub “Reception”/);
    const rows = await page.$$eval("[data-testid='desk-row']", (r) => r.map((x) => x.textContent));
    assert.equal(rows.length, 2);
    assert.match(rows[0], /Sales 1.*Connected/);
    assert.match(rows[1], /Service.*Not connected/);
    await page.fill("[data-testid='new-desk-name']", "Sales 3");
    await page.click("[data-testid='add-desk']");
    await page.waitForSelector("[data-testid='pairing-code']");
    assert.equal(await page.textContent("[data-testid='pairing-code']"), "K7M2Q-9XH4P");
    assert.equal(await page.textContent("[data-testid='pairing-address']"), "192.168.1.10:8788");
    assert.match(await page.textContent("[data-testid='pairing']"), /Identity 4791-58D8-F767-8105/);
    assert.equal(await page.evaluate(() => window.__mock.callsOf("hub_add_desk")[0].args.name), "Sales 3");
    // Removing asks first; Cancel keeps the desk.
    await page.click("[data-desk='Service'] [data-testid='remove-desk']");
    await page.click("[data-testid='confirm-no']");
    assert.equal(await page.evaluate(() => window.__mock.callsOf("hub_remove_desk").length), 0);
    await page.click("[data-desk='Service'] [data-testid='remove-desk']");
    await page.click("[data-testid='confirm-yes']");
    await page.waitForSelector("[data-desk='Service'] .pill:text('Removed')");
    assert.equal(await page.$("[data-desk='Service'] [data-testid='remove-desk']"), null);
  });
});

test("a desk whose hub is away says so, and leaving asks first", async () => {
  const link = { hub_name: "Reception", address: "192.168.1.10:8788", state: "reconnecting", since: "2026-11-23T18:20:00Z",
    problem: "Reconnecting to the hub \"Reception\" since 10:20:00: cannot reach the hub", hub_receiving: null, hub_headline: null };
  const hub = { role: "desk", hub_name: "Reception", address: "192.168.1.10:8788", identity: "4791-58D8-F767-8105", desk_name: "Sales 3", link, desks: [], problem: null };
  await withApp({ mock: { hub } }, async (page) => {
    await openHub(page);
    await page.waitForSelector("[data-testid='link'][data-state='reconnecting']");
    assert.match(await page.textContent("[data-testid='link']"), /Reconnecting.*cannot reach the hub/);
    await page.click("[data-testid='leave-hub']");
    await page.click("[data-testid='confirm-yes']");
    await page.waitForSelector("[data-testid='join-hub']");
    assert.equal(await page.evaluate(() => window.__mock.callsOf("leave_hub").length), 1);
  });
});

test("a desk whose hub is out of reach says where the call's timeline is", async () => {
  const note = "The timeline of this call is kept at the hub “Reception”, which cannot be reached now.";
  await withApp({ mock: { remoteNote: note } }, async (page) => {
    await page.click(".row[data-call-id]");
    await page.waitForSelector("[data-testid='remote-note']");
    assert.equal(await page.textContent("[data-testid='remote-note']"), note);
  });
});

test("on a desk, the hub's settings show as managed by the hub and the desk's own stay editable", async () => {
  const hub = { role: "desk", hub_name: "Reception", address: "192.168.1.10:8788", identity: "4791-58D8-F767-8105", desk_name: "Sales 3",
    link: { hub_name: "Reception", address: "192.168.1.10:8788", state: "connected", since: "2026-11-23T18:20:00Z", problem: null, hub_receiving: true, hub_headline: "Receiving calls" }, desks: [], problem: null };
  await withApp({ mock: { hub } }, async (page) => {
    await page.click("#tab-settings");
    await page.waitForSelector("[data-section='ringcentral'] [data-testid='managed-by-hub']");
    for (const id of ["ringcentral", "ringotel", "tunnel"]) {
      assert.match(await page.textContent(`[data-section='${id}']`), /Managed by the hub “Reception”/);
      assert.equal(await page.$$eval(`[data-section='${id}'] input`, (i) => i.length), 0, `${id} has nothing to edit`);
    }
    assert.ok(await page.$("[data-section='popups'] input"), "popups stay this desk's own");
  });
});
