// Display formatting: phone numbers, times, durations. Pure functions (unit-tested in Node).

// Country calling codes of one and two digits; every other code has three (ITU E.164 plan).
const CC1 = new Set(["1", "7"]);
const CC2 = new Set([
  "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
  "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84",
  "86", "90", "91", "92", "93", "94", "95", "98",
]);

function splitCountry(digits: string): [string, string] {
  if (CC1.has(digits.slice(0, 1))) return [digits.slice(0, 1), digits.slice(1)];
  if (CC2.has(digits.slice(0, 2))) return [digits.slice(0, 2), digits.slice(2)];
  return [digits.slice(0, 3), digits.slice(3)];
}

function groups(s: string, sizes: number[]): string {
  const out: string[] = [];
  let i = 0;
  for (const n of sizes) {
    if (i >= s.length) break;
    out.push(s.slice(i, i + n));
    i += n;
  }
  if (i < s.length) out.push(s.slice(i));
  return out.join(" ");
}

/** Groups a national significant number when no country rule applies. */
function genericGroups(n: string): string {
  switch (n.length) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
      return n;
    case 5: return groups(n, [2, 3]);
    case 6: return groups(n, [3, 3]);
    case 7: return groups(n, [3, 4]);
    case 8: return groups(n, [4, 4]);
    case 9: return groups(n, [3, 3, 3]);
    case 10: return groups(n, [3, 3, 4]);
    case 11: return groups(n, [3, 4, 4]);
    default: return groups(n, [4, 4, 4]);
  }
}

function nationalGroups(cc: string, n: string): string {
  switch (cc) {
    case "1": // NANP: 415 555 0123
      return n.length === 10 ? groups(n, [3, 3, 4]) : genericGroups(n);
    case "61": // AU: mobiles 412 345 678, landlines 2 9876 5432, 1300/1800 numbers
      if (n.length === 9 && n[0] === "4") return groups(n, [3, 3, 3]);
      if (n.length === 9 && n[0] === "1") return groups(n, [3, 3, 3]);
      if (n.length === 9) return groups(n, [1, 4, 4]);
      return genericGroups(n);
    case "64": // NZ: mobiles 21 123 4567, landlines 9 123 4567
      if (n[0] === "2" && n.length >= 8) return groups(n, [2, 3, n.length - 5]);
      if (n.length === 8) return groups(n, [1, 3, 4]);
      return genericGroups(n);
    case "44": // GB: London 20 7946 0018, mobiles 7700 900123, others 1632 960961
      if (n.length === 10 && n[0] === "2") return groups(n, [2, 4, 4]);
      if (n.length === 10) return groups(n, [4, 6]);
      return genericGroups(n);
    case "353": // IE: Dublin 1 234 5678, mobiles 87 123 4567
      if (n[0] === "1" && n.length === 8) return groups(n, [1, 3, 4]);
      if (n.length === 9) return groups(n, [2, 3, 4]);
      return genericGroups(n);
    default:
      return genericGroups(n);
  }
}

/** Formats an E.164 number for display: `+14155550123` → `+1 415 555 0123`. */
export function formatE164(e164: string): string {
  const digits = e164.replace(/^\+/, "");
  if (!/^\d{4,15}$/.test(digits)) return e164;
  const [cc, rest] = splitCountry(digits);
  return `+${cc} ${nationalGroups(cc, rest)}`;
}

/** Best display of a party's number: formatted E.164, else the raw value cleaned of URI noise. */
export function formatNumber(e164: string | null | undefined, raw: string | null | undefined): string {
  if (e164) return formatE164(e164);
  if (!raw) return "";
  const cleaned = raw.trim().replace(/^(tel|sips?):/i, "").replace(/@.*$/, "");
  if (/^\+\d{8,15}$/.test(cleaned)) return formatE164(cleaned);
  return cleaned;
}

/** `tel:` URI for a number, or null when there is nothing dialable. */
export function telHref(e164: string | null | undefined, raw: string | null | undefined): string | null {
  if (e164 && /^\+\d{4,15}$/.test(e164)) return `tel:${e164}`;
  const digits = (raw ?? "").replace(/[^\d+]/g, "");
  if (/^\+?\d{2,15}$/.test(digits)) return `tel:${digits}`;
  return null;
}

/** Removes bidi controls and other invisible formatting characters from untrusted display text. */
export function cleanText(s: string | null | undefined): string {
  if (!s) return "";
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000B-\u001F\u007F\u200B-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]/g, "").trim();
}

/** `m:ss` or `h:mm:ss`. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

// Intl formatters are expensive to create: make each once.
const fmtCache = new Map<string, Intl.DateTimeFormat>();
function dtf(key: string, opts: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  let f = fmtCache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(undefined, opts);
    fmtCache.set(key, f);
  }
  return f;
}
const nf = new Intl.NumberFormat();
export function formatCount(n: number): string {
  return nf.format(n);
}

export function sameLocalDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

export function startOfLocalDay(d: Date): Date {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate());
}

export function formatClock(d: Date): string {
  return dtf("clock", { hour: "numeric", minute: "2-digit" }).format(d);
}

/** Call-list time: relative for today ("Just now", "12 min ago", "3 h ago"), a date otherwise. */
export function formatCallTime(iso: string, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const diff = now.getTime() - d.getTime();
  if (sameLocalDay(d, now) && diff > -60_000) {
    if (diff < 60_000) return "Just now";
    const min = Math.floor(diff / 60_000);
    if (min < 60) return `${min} min ago`;
    const hours = Math.floor(min / 60);
    return `${hours} h ago`;
  }
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (sameLocalDay(d, yesterday)) return `Yesterday, ${formatClock(d)}`;
  if (d.getFullYear() === now.getFullYear()) {
    return `${dtf("md", { month: "short", day: "numeric" }).format(d)}, ${formatClock(d)}`;
  }
  return dtf("ymd", { year: "numeric", month: "short", day: "numeric" }).format(d);
}

/** Full local date and time, for tooltips and the detail panel. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return dtf("full", { weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit", second: "2-digit" }).format(d);
}

/** Time of day with seconds, for timelines. */
export function formatTimeOfDay(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return dtf("tod", { hour: "numeric", minute: "2-digit", second: "2-digit" }).format(d);
}

/** "3 min ago", "2 h ago", "4 days ago" for status "since" lines. */
export function formatAgo(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return "never";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const diff = Math.max(0, now.getTime() - t);
  const s = Math.floor(diff / 1000);
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const hrs = Math.round(m / 60);
  if (hrs < 48) return `${hrs} h ago`;
  return `${Math.round(hrs / 24)} days ago`;
}

/** Local `YYYY-MM-DD` for a date input. */
export function toDateInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** Parses a date input's `YYYY-MM-DD` as local midnight. */
export function fromDateInput(s: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return null;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return Number.isNaN(d.getTime()) ? null : d;
}
