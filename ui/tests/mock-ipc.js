// Mock Tauri IPC, injected with page.addInitScript before any page script runs.
//
// Implements `window.__TAURI_INTERNALS__` the way @tauri-apps/api v2 uses it (invoke,
// transformCallback, unregisterCallback; event listen/unlisten through `plugin:event|*`), against a
// deterministic 1,000,000-call history computed on demand by index (nothing is materialised), plus
// live calls added by tests. Tests drive it through `window.__mock`.
//
// Config: `window.__MOCK_CONFIG__` = { now: ms, latency: ms, totalNull: bool, health: {...} }.
(() => {
  "use strict";
  const cfg = Object.assign({ now: Date.now(), latency: 3, totalNull: false }, window.__MOCK_CONFIG__ || {});
  const N = cfg.size ?? 1_000_000;
  const STEP = 61_000;
  const BASE = cfg.now - 90_000;

  // ---- deterministic hashing
  function mix(x) {
    x = Math.imul(x ^ 0x9e3779b9, 0x85ebca6b);
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35);
    x ^= x >>> 16;
    return x >>> 0;
  }
  const h1 = (i) => mix(i * 3 + 1);
  const h2 = (i) => mix(i * 7 + 11);
  const h3 = (i) => mix(i * 13 + 5);

  // ---- people and lines
  const FIRST = ["Olivia", "Liam", "Emma", "Noah", "Ava", "Mason", "Sophia", "Lucas", "Mia", "Ethan", "Isabella", "James", "Amelia", "Henry", "Harper", "Jack", "Evelyn", "Leo", "Chloe", "Owen", "Zoe", "Mateo", "Priya", "Wei", "Fatima", "Diego", "Aiko", "Sean", "Grace", "Omar"];
  const LAST = ["Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Lee", "Walker", "Hall", "Young", "King", "O'Brien", "Nguyen", "Kim", "Patel", "Chen", "Murphy", "Rossi", "Kowalski", "Haddad", "Silva"];
  const AREAS = ["415", "510", "650", "408", "925", "707", "209", "916", "831", "559"];
  const CUSTOMERS = 4000;
  const customerCache = new Map();
  function customer(k) {
    let c = customerCache.get(k);
    if (c) return c;
    const r = mix(k * 31 + 7);
    let e164;
    if (k === 7) e164 = "+14155550123";
    else if (r % 10 === 0) e164 = "+614" + String(10000000 + (mix(k) % 89999999)).padStart(8, "0");
    else e164 = "+1" + AREAS[r % AREAS.length] + String(2000000 + (mix(k + 99) % 7999999));
    let name = r % 4 === 0 ? null : `${FIRST[(r >>> 4) % FIRST.length]} ${LAST[(r >>> 9) % LAST.length]}`;
    if (k === 7) name = "Jane Cooper";
    if (k === 13) name = '<img src=x onerror="window.__xss=1">Evil \u202Egnp.exe';
    const digits = e164.slice(1);
    const national = e164.startsWith("+61") ? "0" + e164.slice(3) : e164.startsWith("+1") ? "1" + e164.slice(2) : digits;
    const raw = r % 3 === 0 ? national : e164;
    c = { k, e164, name, raw, digits, national, nameLower: (name || "").toLowerCase() };
    customerCache.set(k, c);
    return c;
  }
  const STAFF = [
    { id: "62001", n: "101", name: "Alice Martin" }, { id: "62002", n: "102", name: "Bob Nguyen" },
    { id: "62003", n: "103", name: "Carla Diaz" }, { id: "62004", n: "104", name: "Dev Patel" },
    { id: "62005", n: "110", name: "Reception" }, { id: "62006", n: "201", name: "Service Desk" },
    { id: "62007", n: "202", name: "Parts Counter" }, { id: "62008", n: "301", name: "Finance" },
  ];
  const LINES = [
    { e164: "+14155550100", label: "Sales" }, { e164: "+14155550111", label: "Service" },
    { e164: "+14155550122", label: "Parts" }, { e164: "+14155550199", label: null },
  ];

  // ---- the virtual history: call i (0 = newest) is a pure function of i
  function startedMs(i) { return BASE - i * STEP - (h1(i) % 50_000); }
  function customerOf(i) { return i < 40 && i % 9 === 2 ? 7 : h2(i) % CUSTOMERS; }
  function directionOf(i) { const r = h3(i) % 100; return r < 70 ? "inbound" : r < 92 ? "outbound" : "internal"; }
  function resultOf(i) {
    const d = directionOf(i);
    const r = (h1(i) >>> 8) % 100;
    if (d === "inbound") return i === 1 ? "missed" : r < 62 ? "answered" : r < 82 ? "missed" : "voicemail";
    if (d === "outbound") return r < 70 ? "answered" : "no_answer";
    return r < 85 ? "answered" : "missed";
  }
  function extMask(i) { // which staff took part
    const r = h2(i) >>> 12;
    const a = r % STAFF.length;
    const b = (r >>> 4) % STAFF.length;
    return (1 << a) | ((r >>> 8) % 3 === 0 ? 1 << b : 0);
  }
  function answeredStaff(i) { return (h2(i) >>> 12) % STAFF.length; }
  function iso(ms) { return new Date(ms).toISOString(); }

  function baseCall(i) {
    const id = N - i;
    const o = overrides.get(id);
    if (o) return o;
    const dir = directionOf(i);
    const result = resultOf(i);
    const cust = customer(customerOf(i));
    const line = LINES[(h3(i) >>> 9) % LINES.length];
    const start = startedMs(i);
    const ring = 3 + ((h1(i) >>> 4) % 38);
    const talk = result === "answered" ? 15 + ((h3(i) >>> 3) % 900) : 0;
    const mask = extMask(i);
    const ansIdx = answeredStaff(i);
    const extensions = [];
    STAFF.forEach((s, k) => {
      if (mask & (1 << k)) {
        const answered = result === "answered" && k === ansIdx;
        extensions.push({ extension_id: s.id, extension_number: s.n, name: s.name, direction: dir === "outbound" ? "outbound" : "inbound", rang: dir !== "outbound", answered, talk_seconds: answered ? talk : 0, state: "ended" });
      }
    });
    const staff = STAFF[ansIdx];
    let from, fromE, fromName, to, toE, toName, label = null;
    if (dir === "inbound") {
      from = cust.raw; fromE = cust.e164; fromName = cust.name; to = line.e164; toE = line.e164; toName = null; label = line.label;
    } else if (dir === "outbound") {
      from = line.e164; fromE = line.e164; fromName = staff.name; to = cust.raw; toE = cust.e164; toName = cust.name;
    } else {
      const other = STAFF[(ansIdx + 1) % STAFF.length];
      from = staff.n; fromE = null; fromName = staff.name; to = other.n; toE = null; toName = other.name;
    }
    const answeredAt = result === "answered" ? start + ring * 1000 : null;
    const vm = result === "voicemail";
    const end = start + (ring + talk + (vm ? 25 : 0)) * 1000;
    const rec = result === "answered" && h1(i) % 3 === 0;
    return {
      id, provider: h3(i) % 5 === 0 ? "ringotel" : "ringcentral", call_key: `s-${(h1(i) >>> 0).toString(16)}${id.toString(16)}`,
      direction: dir, state: "ended", result,
      from, from_e164: fromE, from_name: fromName, to, to_e164: toE, to_name: toName, line_label: label,
      extensions, started_at: iso(start), answered_at: answeredAt ? iso(answeredAt) : null, ended_at: iso(end),
      ring_seconds: ring, talk_seconds: talk,
      recording_url: rec ? `https://media.ringcentral.example/recording/${id}` : null,
      voicemail_id: vm ? `vm-${id}` : null, voicemail_seconds: vm ? 25 : null, voicemail_url: vm ? `https://media.ringcentral.example/voicemail/${id}` : null,
      event_count: 4 + (h1(i) % 6), last_event_at: iso(end + 400), updated_at: iso(end + 500),
    };
  }

  // ---- live calls added by tests, and updates of base calls
  const extras = []; // full CallViews, any order
  const overrides = new Map();

  // ---- query evaluation
  function numberish(s) { return /^[\d\s()+.\-]+$/.test(s) && s.replace(/\D/g, "").length >= 2; }
  function compile(q) {
    const search = (q.search || "").trim();
    const digits = search.replace(/\D/g, "");
    const isNum = search && numberish(search);
    const text = search.toLowerCase();
    let custSet = null;
    let staffMaskForSearch = 0;
    if (search) {
      custSet = new Set();
      for (let k = 0; k < CUSTOMERS; k++) {
        const c = customer(k);
        if (isNum ? (c.digits.includes(digits) || c.national.includes(digits) || c.raw.replace(/\D/g, "").includes(digits)) : c.nameLower.includes(text)) custSet.add(k);
      }
      STAFF.forEach((s, k) => {
        if (isNum ? s.n === digits || s.id === digits : s.name.toLowerCase().includes(text)) staffMaskForSearch |= 1 << k;
      });
    }
    let extBit = 0;
    if (q.extension) {
      const e = String(q.extension).trim();
      STAFF.forEach((s, k) => { if (s.n === e || s.id === e) extBit |= 1 << k; });
      if (!extBit) extBit = -1; // matches nothing
    }
    const sinceMs = q.since ? Date.parse(q.since) : null;
    const untilMs = q.until ? Date.parse(q.until) : null;
    const baseMatch = (i) => {
      if (q.result && resultOf(i) !== q.result) return false;
      if (q.direction && directionOf(i) !== q.direction) return false;
      if (extBit) { if (extBit === -1 || !(extMask(i) & extBit)) return false; }
      if (custSet) {
        const dir = directionOf(i);
        const custHit = dir !== "internal" && custSet.has(customerOf(i));
        const staffHit = (extMask(i) & staffMaskForSearch) !== 0;
        if (!custHit && !staffHit) return false;
      }
      return true;
    };
    const viewMatch = (c) => {
      const t = Date.parse(c.started_at);
      if (sinceMs !== null && t < sinceMs) return false;
      if (untilMs !== null && t >= untilMs) return false;
      if (q.result && c.result !== q.result) return false;
      if (q.direction && c.direction !== q.direction) return false;
      if (q.extension && !c.extensions.some((p) => p.extension_number === q.extension || p.extension_id === q.extension)) return false;
      if (search) {
        const nums = [c.from, c.from_e164, c.to, c.to_e164].filter(Boolean).map((x) => x.replace(/\D/g, ""));
        const names = [c.from_name, c.to_name, ...c.extensions.map((p) => p.name)].filter(Boolean).map((x) => x.toLowerCase());
        const hit = isNum ? nums.some((n) => n.includes(digits)) || c.extensions.some((p) => p.extension_number === digits) : names.some((n) => n.includes(text));
        if (!hit) return false;
      }
      return true;
    };
    // Index range from the date filter (startedMs is strictly decreasing in i).
    const firstIdxBefore = (ms) => { // smallest i with startedMs(i) < ms
      let lo = 0, hi = N;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (startedMs(mid) < ms) hi = mid; else lo = mid + 1; }
      return lo;
    };
    const iLo = untilMs !== null ? firstIdxBefore(untilMs) : 0;
    const iHi = sinceMs !== null ? firstIdxBefore(sinceMs) : N; // exclusive
    return { baseMatch, viewMatch, iLo, iHi };
  }

  const COUNT_CAP = 1_000;
  const totals = new Map();
  function listCalls(q) {
    const limit = q.limit > 0 ? q.limit : Infinity;
    const cq = compile(q);
    let cur = null;
    if (q.cursor) {
      try { cur = JSON.parse(atob(q.cursor)); } catch { throw "invalid cursor"; }
    }
    const older = (c) => !cur || Date.parse(c.started_at) < cur.t || (Date.parse(c.started_at) === cur.t && c.id < cur.id);
    const out = [];
    const ex = extras.filter((c) => cq.viewMatch(c) && older(c)).sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at) || b.id - a.id);
    for (const c of ex) { if (out.length >= limit) break; out.push(c); }
    let i = cq.iLo;
    if (cur) {
      // first base index strictly older than the cursor
      let lo = 0, hi = N;
      while (lo < hi) { const mid = (lo + hi) >> 1; const t = startedMs(mid); if (t < cur.t || (t === cur.t && N - mid < cur.id)) hi = mid; else lo = mid + 1; }
      i = Math.max(i, lo);
    }
    let more = false;
    for (; i < cq.iHi; i++) {
      if (!cq.baseMatch(i)) continue;
      const c = baseCall(i);
      if (overrides.has(c.id) && !cq.viewMatch(c)) continue;
      if (out.length >= limit) { more = true; break; }
      out.push(c);
    }
    if (!more && out.length >= limit) more = ex.length > limit;
    const last = out[out.length - 1];
    const next_cursor = more && last ? btoa(JSON.stringify({ t: Date.parse(last.started_at), id: last.id })) : null;
    let total = null;
    if (!cfg.totalNull && !q.cursor) {
      const key = JSON.stringify({ ...q, limit: 0, cursor: null, n: extras.length });
      total = totals.get(key);
      if (total === undefined) {
        total = countCalls(q);
        totals.set(key, total);
      }
    }
    // Like the engine: counts stop at COUNT_CAP and say "at least" beyond it.
    let total_at_least = null;
    if (total !== null && total > COUNT_CAP) {
      total_at_least = COUNT_CAP;
      total = null;
    }
    return { calls: out, next_cursor, total, total_at_least };
  }

  function countCalls(q) {
    const cq = compile(q);
    let n = extras.filter(cq.viewMatch).length;
    for (let j = cq.iLo; j < cq.iHi; j++) if (cq.baseMatch(j)) n++;
    return n;
  }

  function findCall(id) {
    const x = extras.find((c) => c.id === id);
    if (x) return x;
    if (id >= 1 && id <= N) return baseCall(N - id);
    return null;
  }

  function detail(id) {
    const c = findCall(id);
    if (!c) throw `call ${id} not found`;
    const start = Date.parse(c.started_at);
    const tl = [];
    const deliveries = [];
    const legExt = c.extensions[0];
    tl.push({ at: c.started_at, leg: "p-1", extension: null, source: "telephony_session", state: "ringing", code: "Setup", reason: null });
    c.extensions.forEach((p, k) => tl.push({ at: iso(start + 1000 + k * 300), leg: `p-${k + 2}`, extension: p.extension_number || null, source: "telephony_session", state: "ringing", code: "Proceeding", reason: null }));
    if (c.answered_at) tl.push({ at: c.answered_at, leg: "p-2", extension: (c.extensions.find((p) => p.answered) || legExt || {}).extension_number || null, source: "telephony_session", state: "connected", code: "Answered", reason: null });
    if (c.result === "voicemail") tl.push({ at: iso(start + c.ring_seconds * 1000), leg: "p-1", extension: null, source: "telephony_session", state: "voicemail", code: "Voicemail", reason: "Voicemail" });
    if (c.ended_at) tl.push({ at: c.ended_at, leg: "p-1", extension: null, source: "telephony_session", state: "ended", code: "Disconnected", reason: c.result === "missed" ? "CallerHangup" : null });
    tl.forEach((t, k) => {
      const body = JSON.stringify({
        uuid: `evt-${id}-${k}`, event: "/restapi/v1.0/account/~/telephony/sessions", timestamp: t.at, subscriptionId: "sub-42",
        body: { sequence: k + 1, sessionId: c.call_key, telephonySessionId: c.call_key, eventTime: t.at, parties: [{ id: t.leg, extensionId: legExt ? legExt.extension_id : null, direction: "Inbound", from: { phoneNumber: c.from_e164 || c.from, name: c.from_name }, to: { phoneNumber: c.to_e164 || c.to }, status: { code: t.code, rcc: false }, missedCall: c.result === "missed" }] },
      });
      deliveries.push({ id: id * 100 + k, provider: c.provider, kind: "telephony-session", dedup_key: `evt-${id}-${k}`, received_at: iso(Date.parse(t.at) + 180), redeliveries: k === 1 ? 1 : 0, headers: { "content-type": "application/json", "validation-token": "[redacted]" }, body });
    });
    // As callpop_core::crm fills it: the caller's number and the phone system's call id.
    const t = settingsBase.popups.crm_url_template;
    const crm_url = t ? t.replace("{e164}", encodeURIComponent(c.from_e164 || "")).replace("{call_id}", encodeURIComponent(c.call_key)) : null;
    // On a desk whose hub is out of reach, a call copied from the hub has no timeline here.
    if (cfg.remoteNote) return { call: c, crm_url, timeline: [], deliveries: [], remote_note: cfg.remoteNote };
    return { call: c, crm_url, timeline: tl, deliveries, remote_note: null };
  }

  // ---- settings (secrets are kept here and never returned)
  const secrets = { client_secret: "s3cr3t-client", jwt: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", api_token: null, ngrok_authtoken: "2abcNGROKtoken" };
  let settingsBase = {
    ringcentral: { server: "https://platform.ringcentral.com", client_id: "kQ9mZ2vLr8xT4pWc", transport: "auto" },
    tunnel: { mode: "ngrok", ngrok_domain: "callpop-baymotors.ngrok.app", public_url: "" },
    watch_extensions: ["101", "102", "110"],
    line_labels: [{ number: "+14155550100", label: "Sales" }, { number: "+14155550111", label: "Service" }, { number: "+14155550122", label: "Parts" }],
    popups: { notifications: "auto", quiet_hours: { start: "21:00", end: "07:30" }, max_on_screen: 3, crm_url_template: "https://crm.baymotors.example/customers?phone={e164}", answered_close_seconds: 8 },
    general: { autostart: cfg.autostart ?? true, close_to_tray: true, data_dir: "/home/staff/.local/share/callpop", default_country: "US" },
  };
  function settingsView() {
    const s = JSON.parse(JSON.stringify(settingsBase));
    return {
      ringcentral: { server: s.ringcentral.server, client_id: s.ringcentral.client_id, transport: s.ringcentral.transport, client_secret_set: !!secrets.client_secret, jwt_set: !!secrets.jwt },
      ringotel: { api_token_set: !!secrets.api_token, api_token_from_environment: false },
      tunnel: { mode: s.tunnel.mode, ngrok_authtoken_set: !!secrets.ngrok_authtoken, ngrok_domain: s.tunnel.ngrok_domain, public_url: s.tunnel.public_url },
      watch_extensions: s.watch_extensions, line_labels: s.line_labels, popups: s.popups, general: s.general,
      managed_by_hub: hub.role === "desk" ? hub.hub_name : null,
    };
  }
  function saveSettings(u) {
    const errors = [];
    if (u.ringcentral.client_id === "rejected-by-server") errors.push({ field: "ringcentral.client_id", message: "RingCentral does not know this client ID." });
    u.line_labels.forEach((l, i) => { if (l.label === "Server says no") errors.push({ field: `line_labels.${i}.label`, message: "This label is reserved." }); });
    u.watch_extensions.forEach((x, i) => { if (x === "999999") errors.push({ field: `watch_extensions.${i}`, message: "Extension 999999 does not exist in this account." }); });
    if (u.general.default_country === "ZZ") errors.push({ field: "general.unknown_thing", message: "Something only the engine knows about is wrong." });
    if (errors.length) return { ok: false, errors };
    // As the engine asks: a new provided public URL needs a confirmation first.
    const currentUrl = settingsBase.tunnel.mode === "provided" ? settingsBase.tunnel.public_url.replace(/\/+$/, "") : null;
    if (!u.confirmed && u.tunnel.mode === "provided" && u.tunnel.public_url.replace(/\/+$/, "") !== currentUrl) {
      return { ok: false, confirmations: [{ field: "tunnel.public_url", question: `Send every call event to ${u.tunnel.public_url}? RingCentral's subscription moves there, with the webhook tokens.` }] };
    }
    const put = (k, v) => { if (v === "") secrets[k] = null; else if (typeof v === "string") secrets[k] = v; };
    put("client_secret", u.ringcentral.client_secret);
    put("jwt", u.ringcentral.jwt);
    put("api_token", u.ringotel.api_token);
    put("ngrok_authtoken", u.tunnel.ngrok_authtoken);
    settingsBase = {
      ringcentral: { server: u.ringcentral.server, client_id: u.ringcentral.client_id, transport: u.ringcentral.transport },
      tunnel: { mode: u.tunnel.mode, ngrok_domain: u.tunnel.ngrok_domain, public_url: u.tunnel.public_url },
      watch_extensions: u.watch_extensions, line_labels: u.line_labels, popups: u.popups,
      general: { ...u.general, data_dir: settingsBase.general.data_dir },
    };
    return { ok: true, settings: settingsView() };
  }

  // ---- health
  const since = (min) => iso(cfg.now - min * 60_000);
  const counters = (a, d, u, r, q, last) => ({ accepted: a, duplicates: d, unauthorized: u, rejected: r, quarantined: q, handshakes: 2, last_accepted_at: last, token_required: true });
  let health = Object.assign({
    status: "ok", version: "0.1.0", started_at: since(60 * 26), listen: "127.0.0.1:8787",
    public_url: "https://callpop-baymotors.ngrok.app", ringcentral_webhook_url: "https://callpop-baymotors.ngrok.app/api/v1/webhooks/phone_calls_webhooks/ringcentral",
    ringotel_webhook_url: "https://callpop-baymotors.ngrok.app/api/v1/webhooks/phone_calls_webhooks/ringotel",
    ringcentral: counters(18234, 412, 0, 0, 0, since(1)), ringotel: counters(5120, 33, 0, 0, 0, since(4)),
    storage_error: null, storage_error_since: null, writer_restarts: 0, writer_last_failure: null,
    ringcentral_transport: "webhook",
    parts: {
      subscription: { state: "active", detail: "Active until 2026-11-30 10:00", since: since(60 * 20) },
      tunnel: { state: "online", detail: "https://callpop-baymotors.ngrok.app", since: since(60 * 26) },
      notifications: { state: "active", detail: "Desktop notifications allowed", since: since(60 * 26) },
      backfill: { state: "idle", detail: "Last backfill 09:12 fetched 3 calls", since: since(78) },
      credentials: { state: "keyring", detail: "RingCentral client secret, JWT and ngrok authtoken are kept in the OS keyring", since: since(60 * 26) },
    },
  }, cfg.health || {});
  let pause = { paused: false, until: null };

  // ---- IPC plumbing (same shape as @tauri-apps/api/mocks)
  const callbacks = new Map();
  let nextCb = 1;
  const listeners = new Map(); // event -> [handlerId]
  const log = [];
  function transformCallback(cb, once) {
    const id = nextCb++;
    callbacks.set(id, (data) => { if (once) callbacks.delete(id); return cb && cb(data); });
    return id;
  }
  function runCallback(id, data) { const cb = callbacks.get(id); if (cb) cb(data); }
  function emit(event, payload) {
    for (const hid of [...(listeners.get(event) || [])]) runCallback(hid, { event, id: hid, payload });
  }
  const failures = new Map(); // cmd -> error string (one-shot)

  // ---- hub mode: a standalone desk that can join the hub "Reception" or become a hub.
  const empty = { role: "standalone", hub_name: null, address: null, identity: null, desk_name: null, link: null, desks: [], problem: null };
  let hub = Object.assign({}, empty, cfg.hub || {});
  const foundHubs = cfg.foundHubs ?? [{ name: "Reception", address: "192.168.1.10:8788", identity: "4791-58D8-F767-8105" }];
  const CODE = "K7M2Q-9XH4P";
  function joinHub(request) {
    if (request.code.replace(/[-\s]/g, "").toUpperCase() !== CODE.replace("-", "")) throw "the pairing code does not match: check it (or make a new one on the hub)";
    hub = { role: "desk", hub_name: "Reception", address: request.address, identity: "4791-58D8-F767-8105", desk_name: request.name, desks: [], problem: null,
      link: { hub_name: "Reception", address: request.address, state: "connected", since: iso(cfg.now), problem: null, hub_receiving: true, hub_headline: "Receiving calls" } };
    return hub;
  }
  function becomeHub(on) {
    hub = on ? { role: "hub", hub_name: "Reception", address: "192.168.1.10:8788", identity: "4791-58D8-F767-8105", desk_name: null, link: null, problem: null,
      desks: [{ name: "Sales 1", connected: true, address: "192.168.1.21", version: "0.1.0", last_seen: iso(cfg.now - 5_000), removed: false },
              { name: "Service", connected: false, address: "192.168.1.30", version: "0.1.0", last_seen: iso(cfg.now - 3_600_000), removed: false }] } : Object.assign({}, empty);
    return hub;
  }

  function handle(cmd, args) {
    switch (cmd) {
      case "plugin:event|listen": {
        const l = listeners.get(args.event) || [];
        l.push(args.handler);
        listeners.set(args.event, l);
        return args.handler;
      }
      case "plugin:event|unlisten": {
        const l = listeners.get(args.event) || [];
        listeners.set(args.event, l.filter((x) => x !== args.eventId));
        return null;
      }
      case "list_calls": return listCalls(args.query);
      case "get_call": return detail(args.id);
      case "export_folders": return [{ label: "Downloads", path: "/home/staff/Downloads" }, { label: "Documents", path: "/home/staff/Documents" }];
      case "export_csv": {
        const folder = args.request.folder ?? "/home/staff/Downloads";
        if (!folder.startsWith("/")) throw `choose a full folder path, such as /home/staff/Downloads`;
        return { path: `${folder}/callpop-calls-2026-11-23-101500.csv`, folder, rows: countCalls(args.request.query) };
      }
      case "open_export": case "show_export": return null;
      case "play_voicemail": return `/home/staff/.local/share/callpop/voicemail/${args.id}.mp3`;
      case "get_ringotel_token": return { token: secrets.api_token || null, from_environment: false };
      case "open_link": return cfg.telHandler === false && args.url.startsWith("tel:") ? "no_handler" : "opened";
      case "get_settings": return settingsView();
      case "save_settings": return saveSettings(args.update);
      case "test_ringcentral": return secrets.jwt ? { ok: true, message: "Connected as Bay Motors (account 400123)" } : { ok: false, message: "No JWT credential set" };
      case "get_health": return health;
      case "run_health_action": return { ok: true, message: { reconnect_tunnel: "Tunnel reconnected", recreate_subscription: "Subscription re-created", backfill_now: "Checked the last 24 hours of the call log: no call was missing.", reconnect_websocket: "Connecting to RingCentral…" }[args.action] || "Done" };
      case "get_pause": return pause;
      case "set_pause": pause = { paused: true, until: args.minutes == null ? null : iso(cfg.now + args.minutes * 60_000) }; return pause;
      case "resume": pause = { paused: false, until: null }; return pause;
      case "get_hub": return hub;
      case "set_hub": return becomeHub(args.on);
      case "hub_add_desk": return { code: CODE, address: "192.168.1.10:8788", addresses: ["192.168.1.10:8788"], identity: "4791-58D8-F767-8105", expires_at: iso(cfg.now + 600_000) };
      case "hub_remove_desk": hub = Object.assign({}, hub, { desks: hub.desks.map((d) => d.name === args.name ? Object.assign({}, d, { removed: true, connected: false }) : d) }); return hub;
      case "find_hubs": return foundHubs;
      case "join_hub": return joinHub(args.request);
      case "leave_hub": hub = Object.assign({}, empty); return hub;
      default: throw `unknown command ${cmd}`;
    }
  }

  async function invoke(cmd, args = {}) {
    const entry = { cmd, args: JSON.parse(JSON.stringify(args || {})) };
    log.push(entry);
    await new Promise((r) => setTimeout(r, cfg.latency));
    if (failures.has(cmd)) { const e = failures.get(cmd); failures.delete(cmd); throw e; }
    const out = handle(cmd, args);
    if (cmd === "list_calls") entry.result = { next_cursor: out.next_cursor, n: out.calls.length, total: out.total, first: out.calls[0]?.id ?? null };
    if (cmd === "get_settings" || cmd === "save_settings") entry.result = JSON.parse(JSON.stringify(out));
    return out;
  }

  window.__TAURI_INTERNALS__ = {
    invoke, transformCallback, unregisterCallback: (id) => callbacks.delete(id), runCallback, callbacks,
    metadata: { currentWindow: { label: "main" }, currentWebview: { windowLabel: "main", label: "main" } },
    convertFileSrc: (p) => p,
  };
  window.__TAURI_EVENT_PLUGIN_INTERNALS__ = { unregisterListener: (_event, id) => callbacks.delete(id) };

  window.__mock = {
    N, log, extras, overrides, baseCall, findCall, detail, customer, startedMs, secrets,
    listeners: () => Object.fromEntries([...listeners].map(([k, v]) => [k, v.length])),
    emit,
    /** Adds or updates a live call (stored first, then announced, like the engine). */
    pushCall(c) {
      const i = extras.findIndex((x) => x.id === c.id);
      if (i >= 0) extras[i] = c;
      else if (c.id <= N) overrides.set(c.id, c);
      else extras.push(c);
      totals.clear();
      emit("call-changed", c);
    },
    setHealth(patch) { health = Object.assign({}, health, patch); emit("health-changed", health); return health; },
    setHub(patch) { hub = Object.assign({}, hub, patch); return hub; },
    failNext(cmd, err) { failures.set(cmd, err); },
    callsOf(cmd) { return log.filter((x) => x.cmd === cmd); },
    now: cfg.now,
  };
})();
