// How a call is summarised on screen (shared by the list rows and the detail panel).
import type { CallView, CallDirection } from "./bindings";
import { cleanText, formatDuration, formatNumber } from "./format";
import type { IconName } from "./dom";

export type Tone = "ok" | "danger" | "vm" | "muted" | "ringing" | "live";

const WITHHELD = /^(anonymous|unknown|private|restricted|unavailable|withheld|blocked|null)$/i;

export type Party = { name: string; number: string; e164: string | null; raw: string | null };

function party(name: string | null, e164: string | null, raw: string | null): Party {
  return { name: cleanText(name), number: cleanText(formatNumber(e164, raw)), e164, raw };
}

/** The other side from the dealership's point of view (the customer, for external calls). */
export function counterpart(c: CallView): Party {
  return c.direction === "outbound" ? party(c.to_name, c.to_e164, c.to) : party(c.from_name, c.from_e164, c.from);
}

export function ourSide(c: CallView): Party {
  return c.direction === "outbound" ? party(c.from_name, c.from_e164, c.from) : party(c.to_name, c.to_e164, c.to);
}

export function isWithheld(p: Party): boolean {
  return !p.number || WITHHELD.test(p.number);
}

export const DIRECTION_LABEL: Record<CallDirection, string> = { inbound: "Inbound", outbound: "Outbound", internal: "Internal", unknown: "Unknown direction" };

/** Title line: name, else number, else "Withheld number". */
export function primaryText(c: CallView): string {
  if (c.direction === "internal") {
    const a = party(c.from_name, c.from_e164, c.from);
    const b = party(c.to_name, c.to_e164, c.to);
    return `${a.name || a.number || "?"} → ${b.name || b.number || "?"}`;
  }
  const p = counterpart(c);
  if (p.name && !WITHHELD.test(p.name)) return p.name;
  if (isWithheld(p)) return "Withheld number";
  return p.number;
}

/** Second line: the number when a name was shown, else the direction. */
export function secondaryText(c: CallView): string {
  if (c.direction === "internal") return "Internal call";
  const p = counterpart(c);
  if (p.name && !WITHHELD.test(p.name) && !isWithheld(p)) return p.number;
  return c.direction === "outbound" ? "Outbound call" : c.direction === "inbound" ? "No caller name" : "Unknown direction";
}

/** The Line column: the dealership's label for the line, else the number dialled (or dialled from). */
export function lineText(c: CallView): { text: string; isLabel: boolean } {
  const label = cleanText(c.line_label);
  if (label) return { text: label, isLabel: true };
  if (c.direction !== "inbound" && c.direction !== "outbound") return { text: "", isLabel: false };
  // A public number only: an extension ("201") is a desk, shown in the Extension column.
  const us = ourSide(c);
  return { text: us.e164 ? us.number : "", isLabel: false };
}

export function directionIcon(c: CallView): IconName {
  if (c.direction === "inbound") return c.result === "missed" ? "missed" : "inbound";
  if (c.direction === "outbound") return "outbound";
  if (c.direction === "internal") return "internal";
  return "unknown";
}

export function resultBadge(c: CallView): { text: string; tone: Tone } {
  if (c.state === "ringing") return { text: "Ringing", tone: "ringing" };
  if (c.state === "connected") return { text: "On call", tone: "live" };
  switch (c.result) {
    case "answered": return { text: "Answered", tone: "ok" };
    case "missed": return { text: "Missed", tone: "danger" };
    case "voicemail": return { text: "Voicemail", tone: "vm" };
    case "no_answer": return { text: "No answer", tone: "muted" };
    // The phone system never said how the call ended (CallResult::NoEndReported).
    case "no_end_reported": return { text: "No end reported", tone: "muted" };
    default: return { text: c.state === "ended" ? "Ended" : "Unknown", tone: "muted" };
  }
}

export function isLive(c: CallView): boolean {
  return c.state === "ringing" || c.state === "connected";
}

/** Ring/talk summary; live calls count up from their start/answer time. */
export function durationText(c: CallView, now = Date.now()): string {
  if (c.state === "ringing") return `Ringing ${formatDuration((now - Date.parse(c.started_at)) / 1000)}`;
  if (c.state === "connected") {
    const since = Date.parse(c.answered_at ?? c.started_at);
    return `Talking ${formatDuration((now - since) / 1000)}`;
  }
  if (c.result === "voicemail") {
    return c.voicemail_seconds != null ? `Message ${formatDuration(c.voicemail_seconds)}` : `Rang ${formatDuration(c.ring_seconds)}`;
  }
  if (c.result === "no_end_reported") return c.answered_at ? "Talked, end unknown" : "Rang, end unknown";
  if (c.result === "missed" || c.result === "no_answer" || c.talk_seconds === 0) return `Rang ${formatDuration(c.ring_seconds)}`;
  return `Talk ${formatDuration(c.talk_seconds)}`;
}

/** Extension summary for the list: the desk that took (or placed) the call, else who rang. */
export function extensionText(c: CallView): { main: string; sub: string; title: string } {
  const parts = c.extensions;
  if (!parts.length) return { main: "", sub: "", title: "" };
  const num = (p: CallView["extensions"][number]) => cleanText(p.extension_number ?? p.extension_id ?? "?");
  const title = parts.map((p) => {
    const n = cleanText(p.name);
    return `${num(p)}${n ? ` ${n}` : ""}${p.answered ? " (answered)" : p.rang ? " (rang)" : ""}`;
  }).join(", ");
  const lead = parts.find((p) => p.answered) ?? (c.direction === "outbound" || parts.length === 1 ? parts[0] : undefined);
  if (lead) {
    const others = parts.length - 1;
    const name = cleanText(lead.name);
    const ext = `Ext. ${num(lead)}`;
    const more = others > 0 ? ` · ${others} more rang` : "";
    return name ? { main: name, sub: ext + more, title } : { main: ext, sub: more.replace(/^ · /, ""), title };
  }
  const shown = parts.slice(0, 3).map(num).join(", ");
  return { main: `Ext. ${shown}${parts.length > 3 ? ` +${parts.length - 3}` : ""}`, sub: c.result === "answered" ? "" : "Rang, not answered", title };
}

export function safeHttpUrl(u: string | null | undefined): string | null {
  if (!u) return null;
  try {
    const url = new URL(u);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}
