// Client-side validation of the settings form. Pure functions (unit-tested in Node); field paths
// are the same dotted paths the engine uses in `FieldError.field`.
import type { FieldError, LineLabel, SettingsUpdate, SettingsView, Transport } from "./bindings";

export type SecretEdit = { kind: "keep" } | { kind: "replace"; value: string } | { kind: "clear" };
export type SecretField = "ringcentral.client_secret" | "ringcentral.jwt" | "ringotel.api_token" | "tunnel.ngrok_authtoken";
export const SECRET_FIELDS: SecretField[] = ["ringcentral.client_secret", "ringcentral.jwt", "ringotel.api_token", "tunnel.ngrok_authtoken"];

/** The editable form state: text fields keep what was typed so that bad input can be reported. */
export type SettingsForm = {
  ringcentral: { server: string; client_id: string; transport: Transport };
  tunnel: { mode: "off" | "ngrok" | "provided"; ngrok_domain: string; public_url: string };
  watch_extensions: string[];
  line_labels: LineLabel[];
  popups: {
    notifications: "auto" | "on" | "off";
    quiet_enabled: boolean;
    quiet_start: string;
    quiet_end: string;
    max_on_screen: string;
    crm_url_template: string;
    answered_close_seconds: string;
  };
  general: { autostart: boolean; close_to_tray: boolean; default_country: string };
  secrets: Record<SecretField, SecretEdit>;
};

export const COUNTRIES: { code: string; name: string }[] = [
  { code: "US", name: "United States (+1)" },
  { code: "CA", name: "Canada (+1)" },
  { code: "AU", name: "Australia (+61)" },
  { code: "NZ", name: "New Zealand (+64)" },
  { code: "GB", name: "United Kingdom (+44)" },
  { code: "IE", name: "Ireland (+353)" },
];

export const LIMITS = {
  maxOnScreen: { min: 1, max: 10 },
  answeredClose: { min: 0, max: 600 },
  labelLength: 40,
};

export const CRM_PLACEHOLDERS = ["{number}", "{e164}", "{name}", "{call_id}"];

export function formFromSettings(s: SettingsView): SettingsForm {
  return {
    // An engine from before the transport setting sends none: it behaves as "auto".
    ringcentral: { server: s.ringcentral.server, client_id: s.ringcentral.client_id, transport: s.ringcentral.transport ?? "auto" },
    tunnel: { mode: s.tunnel.mode, ngrok_domain: s.tunnel.ngrok_domain, public_url: s.tunnel.public_url },
    watch_extensions: [...s.watch_extensions],
    line_labels: s.line_labels.map((l) => ({ ...l })),
    popups: {
      notifications: s.popups.notifications,
      quiet_enabled: s.popups.quiet_hours !== null,
      quiet_start: s.popups.quiet_hours?.start ?? "22:00",
      quiet_end: s.popups.quiet_hours?.end ?? "07:00",
      max_on_screen: String(s.popups.max_on_screen),
      crm_url_template: s.popups.crm_url_template,
      answered_close_seconds: String(s.popups.answered_close_seconds),
    },
    general: { autostart: s.general.autostart, close_to_tray: s.general.close_to_tray, default_country: s.general.default_country },
    secrets: {
      "ringcentral.client_secret": { kind: "keep" },
      "ringcentral.jwt": { kind: "keep" },
      "ringotel.api_token": { kind: "keep" },
      "tunnel.ngrok_authtoken": { kind: "keep" },
    },
  };
}

function secretOut(e: SecretEdit): string | null {
  if (e.kind === "replace") return e.value;
  if (e.kind === "clear") return "";
  return null;
}

/** The update sent to `save_settings` (call only on a form without errors). */
export function updateFromForm(f: SettingsForm): SettingsUpdate {
  return {
    ringcentral: {
      server: f.ringcentral.server.trim(),
      client_id: f.ringcentral.client_id.trim(),
      client_secret: secretOut(f.secrets["ringcentral.client_secret"]),
      jwt: secretOut(f.secrets["ringcentral.jwt"]),
      transport: f.ringcentral.transport,
    },
    ringotel: { api_token: secretOut(f.secrets["ringotel.api_token"]) },
    tunnel: {
      mode: f.tunnel.mode,
      ngrok_authtoken: secretOut(f.secrets["tunnel.ngrok_authtoken"]),
      ngrok_domain: f.tunnel.ngrok_domain.trim(),
      public_url: f.tunnel.public_url.trim(),
    },
    watch_extensions: [...f.watch_extensions],
    line_labels: f.line_labels.map((l) => ({ number: l.number.trim(), label: l.label.trim() })),
    popups: {
      notifications: f.popups.notifications,
      quiet_hours: f.popups.quiet_enabled
        ? { start: normalizeTime(f.popups.quiet_start) ?? f.popups.quiet_start.trim(), end: normalizeTime(f.popups.quiet_end) ?? f.popups.quiet_end.trim() }
        : null,
      max_on_screen: Number(f.popups.max_on_screen.trim()),
      crm_url_template: f.popups.crm_url_template.trim(),
      answered_close_seconds: Number(f.popups.answered_close_seconds.trim()),
    },
    general: { ...f.general },
    confirmed: false,
  };
}

/** A stable comparison key: equal keys mean no unsaved change. Secrets count by their edit kind. */
export function formKey(f: SettingsForm): string {
  const u = updateFromForm(f);
  const raw = {
    ...u,
    popups: { ...u.popups, max_on_screen: f.popups.max_on_screen.trim(), answered_close_seconds: f.popups.answered_close_seconds.trim(), quiet_start: f.popups.quiet_start.trim(), quiet_end: f.popups.quiet_end.trim() },
    ringcentral: { server: u.ringcentral.server, client_id: u.ringcentral.client_id, transport: u.ringcentral.transport },
    ringotel: {},
    tunnel: { mode: u.tunnel.mode, ngrok_domain: u.tunnel.ngrok_domain, public_url: u.tunnel.public_url },
    secrets: SECRET_FIELDS.map((k) => f.secrets[k].kind),
  };
  return JSON.stringify(raw);
}

// ---------------------------------------------------------------------------------------------
// Field validators: each returns an error message or null.

export function checkHttpsUrl(value: string, opts: { required: boolean; allowLocalHttp?: boolean; what?: string }): string | null {
  const v = value.trim();
  const what = opts.what ?? "URL";
  if (!v) return opts.required ? `Enter the ${what}.` : null;
  if (/\s/.test(v)) return "A URL cannot contain spaces.";
  if (opts.allowLocalHttp && /^http:\/\//i.test(v)) {
    const m = /^http:\/\/127\.0\.0\.1:(\d{1,5})(\/.*)?$/i.exec(v);
    if (!m) return "Use https://, or http://127.0.0.1:PORT for a local test server.";
    const port = Number(m[1]);
    if (port < 1 || port > 65535) return "The port must be between 1 and 65535.";
    return null;
  }
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return `Enter a full ${what} starting with https://`;
  }
  if (u.protocol !== "https:") return opts.allowLocalHttp ? "Use https://, or http://127.0.0.1:PORT for a local test server." : "The URL must start with https://";
  if (!u.hostname || !/^[a-z0-9.-]+$/i.test(u.hostname) || !/[a-z0-9]/i.test(u.hostname)) return "The URL needs a valid host name.";
  if (u.username || u.password) return "The URL must not contain a user name or password.";
  return null;
}

export function checkHostname(value: string): string | null {
  const v = value.trim();
  if (!v) return null;
  if (/^[a-z]+:\/\//i.test(v)) return "Enter just the domain, without https:// (e.g. callpop.ngrok.app).";
  if (v.length > 253 || !/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/i.test(v)) {
    return "Enter a domain name such as callpop.ngrok.app.";
  }
  return null;
}

/** A time as people type it ("22:00", "7:30", "10pm", "10:30 pm", "7 am") in the 24-hour
 * HH:MM the engine keeps; null when it is not a time. */
export function normalizeTime(value: string): string | null {
  const m = /^(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?$/i.exec(value.trim());
  if (!m) return null;
  let hour = Number(m[1]);
  const minute = m[2] === undefined ? 0 : Number(m[2]);
  const half = m[3]?.toLowerCase().replace(/\./g, "");
  if (half) {
    if (hour < 1 || hour > 12) return null;
    hour = (hour % 12) + (half === "pm" ? 12 : 0);
  } else if (m[2] === undefined) {
    return null; // "22" alone is too easily a typo
  }
  if (hour > 23 || minute > 59) return null;
  return `${String(hour).padStart(2, "0")}:${String(minute).padStart(2, "0")}`;
}

export function checkTime(value: string): string | null {
  const v = value.trim();
  if (!v) return "Enter a time as HH:MM.";
  if (normalizeTime(v) === null) return "Enter a time as HH:MM (07:30, 22:00) or like 10pm.";
  return null;
}

export function checkIntRange(value: string, min: number, max: number): string | null {
  const v = value.trim();
  if (!/^\d+$/.test(v)) return `Enter a whole number from ${min} to ${max}.`;
  const n = Number(v);
  if (n < min || n > max) return `Must be from ${min} to ${max}.`;
  return null;
}

/** An extension as people write it ("Ext 201", "ext. 201", "x201") as its digits. */
export function normalizeExtension(value: string): string {
  return value.trim().replace(/^(?:ext(?:ension)?\.?|x)\s*(?=\d)/i, "");
}

/** Watched extension entry: an extension number (e.g. 101) or an extension id (digits). */
export function checkExtension(value: string): string | null {
  const v = normalizeExtension(value);
  if (!v) return "Enter an extension number or id.";
  if (!/^\d{1,20}$/.test(v)) return "Use digits only: an extension number such as 101, or an extension id.";
  return null;
}

export function numberDigits(value: string): string {
  return value.replace(/[\s().-]/g, "");
}

export function checkLineNumber(value: string): string | null {
  const v = value.trim();
  if (!v) return "Enter the dealership number.";
  const d = numberDigits(v);
  if (!/^\+?\d{3,15}$/.test(d)) return "Enter a phone number, e.g. +1 415 555 0100.";
  return null;
}

export function checkLabel(value: string): string | null {
  const v = value.trim();
  if (!v) return "Enter a label, e.g. Sales.";
  if (v.length > LIMITS.labelLength) return `Keep labels to ${LIMITS.labelLength} characters.`;
  return null;
}

export function checkCrmTemplate(value: string): string | null {
  const v = value.trim();
  if (!v) return null;
  const unknown = (v.match(/\{[^}]*\}/g) ?? []).filter((p) => !CRM_PLACEHOLDERS.includes(p));
  if (unknown.length > 0) return `Unknown placeholder ${unknown[0]}. Use ${CRM_PLACEHOLDERS.join(", ")}.`;
  if (/[{}]/.test(v.replace(/\{(number|e164|name|call_id)\}/g, ""))) return "Unbalanced { or } in the template.";
  const sample = fillCrmTemplate(v, { number: "4155550123", e164: "+14155550123", name: "Jane Doe", call_id: "1" });
  if (/^http:\/\//i.test(sample)) {
    let u: URL;
    try {
      u = new URL(sample);
    } catch {
      return "Enter a full CRM URL starting with https://";
    }
    if (u.username || u.password) return "The URL must not contain a user name or password.";
    return isLanHost(u.hostname) ? null : "Use https://. Plain http:// is allowed only for a CRM on the dealership's own network.";
  }
  return checkHttpsUrl(sample, { required: true, what: "CRM URL" });
}

/** The warning shown under a valid CRM template that uses plain http, else null. */
export function crmTemplateWarning(value: string): string | null {
  const v = value.trim();
  if (!/^http:\/\//i.test(v) || checkCrmTemplate(v) !== null) return null;
  return "Not encrypted: the caller's number and name cross the network in clear text. Use https:// if the CRM offers it.";
}

/**
 * Whether a host is on the dealership's network or this computer, as the engine reads it
 * (callpop_core::links): a private, unique-local or loopback address, localhost, a name
 * without dots, or a name under .local, .lan, .internal or .home.arpa.
 */
export function isLanHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  if (!host) return false;
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return a === 10 || a === 127 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254);
  }
  if (host.includes(":")) return host === "::1" || /^f[cd][0-9a-f]{0,2}:/.test(host) || /^fe[89ab][0-9a-f]?:/.test(host);
  if (/^[\d.]+$/.test(host)) return false;
  return !host.includes(".") || [".local", ".lan", ".internal", ".home.arpa"].some((s) => host.endsWith(s));
}

/** Fills a CRM template; every value is URL-encoded. */
export function fillCrmTemplate(t: string, v: { number: string; e164: string; name: string; call_id: string }): string {
  return t
    .replace(/\{number\}/g, encodeURIComponent(v.number))
    .replace(/\{e164\}/g, encodeURIComponent(v.e164))
    .replace(/\{name\}/g, encodeURIComponent(v.name))
    .replace(/\{call_id\}/g, encodeURIComponent(v.call_id));
}

export function checkSecret(field: SecretField, value: string): string | null {
  if (!value.trim()) return "Enter the new value, or cancel to keep the current one.";
  if (/\s/.test(value.trim())) return "This value cannot contain spaces.";
  if (field === "ringcentral.jwt" && !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(value.trim())) {
    return "This does not look like a JWT (three parts separated by dots).";
  }
  return null;
}

function secretIsSet(f: SettingsForm, set: Record<SecretField, boolean>, k: SecretField): boolean {
  const e = f.secrets[k];
  return e.kind === "replace" || (e.kind === "keep" && set[k]);
}

/** Every client-side problem with the form, by field path. */
export function validateForm(f: SettingsForm, set: Record<SecretField, boolean>): FieldError[] {
  const errors: FieldError[] = [];
  const add = (field: string, message: string | null) => {
    if (message) errors.push({ field, message });
  };

  add("ringcentral.server", checkHttpsUrl(f.ringcentral.server, { required: true, allowLocalHttp: true, what: "RingCentral server URL" }));
  const cid = f.ringcentral.client_id.trim();
  if (cid && !/^[A-Za-z0-9_-]{4,128}$/.test(cid)) add("ringcentral.client_id", "A client ID has only letters, digits, - and _.");
  if (!cid && (secretIsSet(f, set, "ringcentral.client_secret") || secretIsSet(f, set, "ringcentral.jwt"))) {
    add("ringcentral.client_id", "Enter the client ID that goes with the secret and JWT.");
  }
  for (const k of SECRET_FIELDS) {
    const e = f.secrets[k];
    if (e.kind === "replace") add(k, checkSecret(k, e.value));
  }

  if (f.tunnel.mode === "ngrok") {
    if (!secretIsSet(f, set, "tunnel.ngrok_authtoken")) {
      add("tunnel.ngrok_authtoken", "ngrok needs an authtoken (dashboard.ngrok.com → Your Authtoken).");
    }
    add("tunnel.ngrok_domain", checkHostname(f.tunnel.ngrok_domain));
  }
  if (f.tunnel.mode === "provided") add("tunnel.public_url", checkHttpsUrl(f.tunnel.public_url, { required: true, what: "public URL" }));

  const seenExt = new Set<string>();
  f.watch_extensions.forEach((x, i) => {
    const msg = checkExtension(x);
    if (msg) add(`watch_extensions.${i}`, `${x}: ${msg}`);
    else if (seenExt.has(x)) add(`watch_extensions.${i}`, `${x} is listed twice.`);
    seenExt.add(x);
  });

  const seenNum = new Map<string, number>();
  f.line_labels.forEach((l, i) => {
    const nm = checkLineNumber(l.number);
    add(`line_labels.${i}.number`, nm);
    if (!nm) {
      // Same line written two ways (+1 415…, 415…, 0412…, +61 412…): compare the trailing digits.
      const key = numberDigits(l.number).replace(/^\+/, "").slice(-9);
      if (seenNum.has(key)) add(`line_labels.${i}.number`, `Already labelled in row ${(seenNum.get(key) ?? 0) + 1}.`);
      else seenNum.set(key, i);
    }
    add(`line_labels.${i}.label`, checkLabel(l.label));
  });

  if (f.popups.quiet_enabled) {
    const s = checkTime(f.popups.quiet_start);
    const e = checkTime(f.popups.quiet_end);
    add("popups.quiet_hours.start", s);
    add("popups.quiet_hours.end", e);
    if (!s && !e && normalizeTime(f.popups.quiet_start) === normalizeTime(f.popups.quiet_end)) add("popups.quiet_hours.end", "The end must differ from the start.");
  }
  add("popups.max_on_screen", checkIntRange(f.popups.max_on_screen, LIMITS.maxOnScreen.min, LIMITS.maxOnScreen.max));
  add("popups.answered_close_seconds", checkIntRange(f.popups.answered_close_seconds, LIMITS.answeredClose.min, LIMITS.answeredClose.max));
  add("popups.crm_url_template", checkCrmTemplate(f.popups.crm_url_template));
  if (!COUNTRIES.some((c) => c.code === f.general.default_country)) add("general.default_country", "Choose a country.");
  return errors;
}
