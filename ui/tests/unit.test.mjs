// Unit tests of the pure modules (number/time formatting, settings validation), bundled from the
// TypeScript sources with esbuild (already a build dependency).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

process.env.TZ = "America/Los_Angeles";
const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "src");
let F;
let V;

async function load(file) {
  const out = await build({ entryPoints: [path.join(src, file)], bundle: true, format: "esm", platform: "neutral", write: false, logLevel: "silent" });
  return import(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0].text).toString("base64")}`);
}

before(async () => {
  F = await load("format.ts");
  V = await load("validate.ts");
});

test("E.164 display formatting by country", () => {
  const cases = [
    ["+14155550123", "+1 415 555 0123"],
    ["+61412345678", "+61 412 345 678"],
    ["+61298765432", "+61 2 9876 5432"],
    ["+61130012345", "+61 130 012 345"],
    ["+442079460018", "+44 20 7946 0018"],
    ["+447700900123", "+44 7700 900123"],
    ["+6421234567", "+64 21 234 567"],
    ["+6491234567", "+64 9 123 4567"],
    ["+35312345678", "+353 1 234 5678"],
    ["+353871234567", "+353 87 123 4567"],
    ["+4930123456", "+49 3012 3456"],
    ["+79161234567", "+7 916 123 4567"],
    ["+8613812345678", "+86 138 1234 5678"],
    ["+971501234567", "+971 501 234 567"],
    ["not a number", "not a number"],
  ];
  for (const [input, want] of cases) assert.equal(F.formatE164(input), want, input);
});

test("numbers without E.164 fall back to the cleaned raw value; tel: links only for dialable numbers", () => {
  assert.equal(F.formatNumber(null, "101"), "101");
  assert.equal(F.formatNumber(null, "sip:+14155550123@sip.ringcentral.com"), "+1 415 555 0123");
  assert.equal(F.formatNumber(null, null), "");
  assert.equal(F.telHref("+14155550123", null), "tel:+14155550123");
  assert.equal(F.telHref(null, "(415) 555-0123"), "tel:4155550123");
  assert.equal(F.telHref(null, "anonymous"), null);
  assert.equal(F.telHref("javascript:alert(1)", null), null);
});

test("untrusted text loses bidi and control characters", () => {
  assert.equal(F.cleanText("Evil \u202Egnp.exe\u200B"), "Evil gnp.exe");
  assert.equal(F.cleanText("  Jane\u0007 "), "Jane");
  assert.equal(F.cleanText(null), "");
});

test("durations and call times", () => {
  assert.equal(F.formatDuration(0), "0:00");
  assert.equal(F.formatDuration(95), "1:35");
  assert.equal(F.formatDuration(3725), "1:02:05");
  const now = new Date("2026-11-23T18:30:00Z"); // 10:30 in Los Angeles
  assert.equal(F.formatCallTime("2026-11-23T18:29:40Z", now), "Just now");
  assert.equal(F.formatCallTime("2026-11-23T18:18:00Z", now), "12 min ago");
  assert.equal(F.formatCallTime("2026-11-23T15:00:00Z", now), "3 h ago");
  assert.match(F.formatCallTime("2026-11-23T07:30:00Z", now), /^Yesterday, 11:30/, "23:30 the day before (local) is yesterday");
  assert.match(F.formatCallTime("2026-11-02T17:00:00Z", now), /^Nov 2, 9:00/);
  assert.match(F.formatCallTime("2025-06-01T17:00:00Z", now), /2025/);
  assert.equal(F.formatAgo("2026-11-23T18:25:00Z", now), "5 min ago");
  assert.equal(F.formatAgo(null, now), "never");
  assert.equal(F.toDateInput(new Date(2026, 0, 5)), "2026-01-05");
  assert.equal(F.fromDateInput("2026-01-05").getDate(), 5);
  assert.equal(F.fromDateInput("bad"), null);
});

test("URL rules: https everywhere; the RingCentral server may be http://127.0.0.1:PORT", () => {
  const rc = (v) => V.checkHttpsUrl(v, { required: true, allowLocalHttp: true });
  const pub = (v) => V.checkHttpsUrl(v, { required: true });
  assert.equal(rc("https://platform.ringcentral.com"), null);
  assert.equal(rc("http://127.0.0.1:8089"), null);
  assert.equal(rc("http://127.0.0.1:8089/restapi"), null);
  assert.notEqual(rc("http://127.0.0.1"), null);
  assert.notEqual(rc("http://localhost:8089"), null);
  assert.notEqual(rc("http://127.0.0.1:0"), null);
  assert.notEqual(rc("ftp://x.example.com"), null);
  assert.notEqual(rc(""), null);
  assert.equal(pub("https://callpop.example.com/hooks"), null);
  assert.notEqual(pub("http://127.0.0.1:8089"), null, "only the RingCentral server may use local http");
  assert.notEqual(pub("https://user:pw@example.com"), null);
  assert.notEqual(pub("https://exa mple.com"), null);
  assert.equal(V.checkHttpsUrl("", { required: false }), null);
});

test("field validators: times, ranges, extensions, line numbers, labels, CRM template, hostnames, JWT", () => {
  for (const ok of ["00:00", "07:30", "23:59", "7:30", "10pm", "10 PM", "10:30pm", "7 a.m."]) assert.equal(V.checkTime(ok), null, ok);
  for (const bad of ["24:00", "12:60", "noon", "", "22", "13pm", "0am"]) assert.notEqual(V.checkTime(bad), null, bad);
  // Written as the engine keeps it.
  assert.equal(V.normalizeTime("10pm"), "22:00");
  assert.equal(V.normalizeTime("12am"), "00:00");
  assert.equal(V.normalizeTime("12:15 pm"), "12:15");
  assert.equal(V.normalizeTime("7:05"), "07:05");
  assert.equal(V.checkIntRange("3", 1, 10), null);
  for (const bad of ["0", "11", "-1", "2.5", "x", ""]) assert.notEqual(V.checkIntRange(bad, 1, 10), null, bad);
  for (const ok of ["101", "62264425004", "Ext 201", "ext.201", "x 202", "Extension 7"]) assert.equal(V.checkExtension(ok), null, ok);
  for (const bad of ["10a", "ext", "", "1".repeat(21), "room 101"]) assert.notEqual(V.checkExtension(bad), null, bad);
  assert.equal(V.normalizeExtension("Ext 201"), "201");
  for (const ok of ["+1 (415) 555-0100", "0412 345 678", "+61412345678"]) assert.equal(V.checkLineNumber(ok), null, ok);
  for (const bad of ["", "call me", "12", "+1 415 555 0100 999 999"]) assert.notEqual(V.checkLineNumber(bad), null, bad);
  assert.equal(V.checkLabel("Sales"), null);
  assert.notEqual(V.checkLabel(" "), null);
  assert.notEqual(V.checkLabel("x".repeat(41)), null);
  assert.equal(V.checkCrmTemplate(""), null);
  assert.equal(V.checkCrmTemplate("https://crm.example.com/?q={number}&id={call_id}"), null);
  assert.match(V.checkCrmTemplate("https://crm.example.com/?q={phone}"), /Unknown placeholder \{phone\}/);
  assert.notEqual(V.checkCrmTemplate("https://crm.example.com/?q={number"), null);
  assert.notEqual(V.checkCrmTemplate("{e164}"), null);
  // Plain http: the dealership's own network only, as the engine's callpop_core::links reads it.
  for (const lan of ["http://192.168.1.20/?p={number}", "http://10.1.2.3/", "http://dms01:8080/{e164}", "http://dms.dealer.local/", "http://127.0.0.1:9/", "http://[fd00::5]/"]) {
    assert.equal(V.checkCrmTemplate(lan), null, lan);
    assert.match(V.crmTemplateWarning(lan), /Not encrypted/, lan);
  }
  for (const outside of ["http://crm.example.com/{e164}", "http://8.8.8.8/", "http://172.32.0.1/"]) assert.match(V.checkCrmTemplate(outside), /https:\/\//, outside);
  assert.equal(V.crmTemplateWarning("https://crm.example.com/{e164}"), null);
  assert.equal(V.fillCrmTemplate("https://c.example/?p={e164}&n={name}", { number: "1", e164: "+1415", name: "A&B <x>", call_id: "9" }), "https://c.example/?p=%2B1415&n=A%26B%20%3Cx%3E");
  assert.equal(V.checkHostname("callpop.ngrok.app"), null);
  assert.match(V.checkHostname("https://callpop.ngrok.app"), /without https/);
  assert.notEqual(V.checkHostname("no_underscores.example"), null);
  assert.equal(V.checkSecret("ringcentral.jwt", "aaa.bbb.ccc"), null);
  assert.notEqual(V.checkSecret("ringcentral.jwt", "not-a-jwt"), null);
  assert.notEqual(V.checkSecret("ringcentral.client_secret", "   "), null);
});

test("form ↔ update: secrets are null unless replaced or cleared; validateForm paths match the engine's", () => {
  const view = {
    ringcentral: { server: "https://platform.ringcentral.com", client_id: "abcd1234", client_secret_set: true, jwt_set: false },
    ringotel: { api_token_set: false, api_token_from_environment: false },
    tunnel: { mode: "ngrok", ngrok_authtoken_set: false, ngrok_domain: "", public_url: "" },
    watch_extensions: ["101", "10x"],
    line_labels: [{ number: "+14155550100", label: "Sales" }, { number: "415 555 0100", label: "" }],
    popups: { notifications: "auto", quiet_hours: null, max_on_screen: 3, crm_url_template: "", answered_close_seconds: 8 },
    general: { autostart: false, close_to_tray: true, data_dir: "/d", default_country: "US" },
  };
  const f = V.formFromSettings(view);
  const key = V.formKey(f);
  const u = V.updateFromForm(f);
  assert.equal(u.ringcentral.client_secret, null);
  assert.equal(u.ringcentral.jwt, null);
  assert.equal(u.ringotel.api_token, null);
  assert.equal(u.popups.quiet_hours, null);
  assert.equal(u.general.data_dir, undefined, "data_dir is read-only and not sent");
  f.secrets["ringcentral.client_secret"] = { kind: "clear" };
  f.secrets["ringotel.api_token"] = { kind: "replace", value: "tok" };
  const u2 = V.updateFromForm(f);
  assert.equal(u2.ringcentral.client_secret, "");
  assert.equal(u2.ringotel.api_token, "tok");
  assert.notEqual(V.formKey(f), key, "secret edits count as changes");
  const set = { "ringcentral.client_secret": true, "ringcentral.jwt": false, "ringotel.api_token": false, "tunnel.ngrok_authtoken": false };
  const fields = V.validateForm(f, set).map((e) => e.field).sort();
  assert.deepEqual(fields, ["line_labels.1.label", "line_labels.1.number", "tunnel.ngrok_authtoken", "watch_extensions.1"].sort());
});
