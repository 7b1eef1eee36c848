// Health: one card per part of the engine, each problem paired with the button that fixes it.
import { commands, type HealthAction, type HealthView, type PartStatus, type ProviderCounters } from "../bindings";
import { h, clear, icon, copyText, errorMessage, type IconName } from "../dom";
import { formatAgo, formatCount, formatDateTime } from "../format";
import { health } from "../state";
import { toast, toastError } from "../toast";

export type Tone = "ok" | "warn" | "error" | "neutral";

const OK_STATES = new Set(["keyring", "file", "active", "online", "ok", "running", "idle", "done", "enabled", "on", "ready", "connected"]);
const WARN_STATES = new Set(["fallback", "renewing", "connecting", "reconnecting", "paused", "pending", "starting", "degraded", "running_backfill", "backfilling", "quiet", "quiet_hours", "denied", "unsupported"]);
const ERROR_STATES = new Set(["error", "blacklisted", "offline", "expired", "failed", "unauthorized"]);

export function stateTone(state: string): Tone {
  const s = state.toLowerCase();
  if (ERROR_STATES.has(s)) return "error";
  if (WARN_STATES.has(s)) return "warn";
  if (OK_STATES.has(s)) return "ok";
  return "neutral";
}

const STATE_LABELS: Record<string, string> = { keyring: "OS keyring", file: "Private file", fallback: "File fallback" };

function stateLabel(state: string): string {
  if (STATE_LABELS[state]) return STATE_LABELS[state];
  const s = state.replace(/_/g, " ");
  return s ? s[0].toUpperCase() + s.slice(1) : "Unknown";
}

type ActionSpec = { action: HealthAction; label: string; icon: IconName };

/** The fixing action for a part in a given state, if any. */
export function actionFor(part: string, state: string): ActionSpec | null {
  const s = state.toLowerCase();
  if (part === "tunnel" && (s === "error" || s === "offline")) return { action: "reconnect_tunnel", label: "Reconnect", icon: "refresh" };
  if (part === "subscription" && (s === "error" || s === "blacklisted" || s === "expired")) return { action: "recreate_subscription", label: "Re-create subscription", icon: "refresh" };
  if (part === "backfill") return { action: "backfill_now", label: "Backfill now", icon: "history" };
  if (part === "websocket" && (s === "error" || s === "reconnecting")) return { action: "reconnect_websocket", label: "Connect now", icon: "refresh" };
  return null;
}

export const STATUS_TEXT: Record<HealthView["status"], string> = {
  ok: "Receiving calls",
  degraded: "Receiving calls · something needs a look",
  not_receiving: "Not receiving calls",
  error: "Calls cannot be saved",
};

/** The colour of an overall status: a desk no call can reach is as red as a full disk. */
export function statusTone(status: HealthView["status"]): "ok" | "warn" | "error" {
  return status === "ok" ? "ok" : status === "degraded" ? "warn" : "error";
}

/** Settings sections by the name the engine gives the fix, with the button's words. */
const FIX_LABEL: Record<string, string> = {
  tunnel: "Set up the public address",
  ringcentral: "Open RingCentral settings",
  ringotel: "Open Ringotel settings",
};

export class HealthPage {
  readonly el: HTMLElement;
  private grid: HTMLElement;
  private summary: HTMLElement;
  private busy = new Set<HealthAction>();
  private engineStopped = false;
  /** Opens Settings at a section (set by the app shell). */
  onFix: (section: string) => void = () => undefined;

  constructor() {
    this.summary = h("div", { class: "health-summary" });
    this.grid = h("div", { class: "health-grid" });
    this.el = h("section", { class: "view view-health", "aria-label": "Health" }, h("div", { class: "health-scroll" }, this.summary, this.grid));
    health.subscribe((v) => this.render(v));
    window.setInterval(() => this.render(health.value), 30_000);
  }

  async load(): Promise<void> {
    try {
      health.set(await commands.getHealth());
    } catch (e) {
      toastError("Couldn't read the engine's health", e);
      if (!health.value) {
        clear(this.grid);
        this.grid.append(h("div", { class: "empty" }, icon("alert", "icon empty-icon"), h("p", { class: "empty-title", text: "Health unavailable" }), h("p", { class: "empty-text", text: errorMessage(e) }),
          h("button", { type: "button", class: "btn", text: "Try again", onclick: () => void this.load() })));
      }
    }
  }

  /** Draws the board now (called when the page is shown). */
  refresh(): void {
    this.draw(health.value);
  }

  private render(v: HealthView | null): void {
    // A hidden page is drawn when shown: health changes with every accepted delivery, and
    // rebuilding cards nobody sees costs a slow PC's CPU while a call rings.
    if (this.el.hidden) return;
    this.draw(v);
  }

  private draw(v: HealthView | null): void {
    if (!v) return;
    // The app reports an engine that could not start with no parts and no listener.
    this.engineStopped = !v.listen && Object.keys(v.parts).length === 0 && v.status !== "ok";
    currentUrls = { tunnel: v.public_url, subscription: v.ringcentral_webhook_url };
    const focused = document.activeElement instanceof HTMLElement && this.el.contains(document.activeElement) ? document.activeElement.dataset.focusKey : undefined;
    clear(this.summary);
    this.summary.append(
      h("div", { class: `health-banner tone-${statusTone(v.status)}`, "data-testid": "health-banner", "data-status": v.status },
        icon(v.status === "ok" ? "check" : "alert", "icon banner-icon"),
        h("div", null,
          h("h2", { text: STATUS_TEXT[v.status] }),
          h("p", { "data-testid": "attention", text: v.attention?.text ?? summaryLine(v) }),
          v.attention?.fix
            ? h("button", { type: "button", class: "btn btn-primary banner-fix", "data-testid": "attention-fix", text: FIX_LABEL[v.attention.fix] ?? "Open Settings", onclick: () => this.onFix(v.attention!.fix!) })
            : null),
        h("div", { class: "banner-meta" }, h("span", { text: `CallPop ${v.version}` }), v.started_at ? h("span", { title: formatDateTime(v.started_at), text: `Started ${formatAgo(v.started_at)}` }) : null)));

    clear(this.grid);
    this.grid.append(...[
      this.receiverCard(v),
      this.partCard("tunnel", "Public URL", "globe", v.parts.tunnel, v.public_url ? this.copyRow("Public URL", v.public_url) : null),
      // Over the WebSocket the webhook subscription is "not needed": its card would only
      // distract; before the WebSocket is decided, both are shown.
      v.parts.websocket && v.parts.websocket.state !== "off"
        ? this.partCard("websocket", "RingCentral connection", "phone", v.parts.websocket,
          h("p", { class: "card-note", text: "CallPop connects to RingCentral itself (WebSocket): no public address is needed for RingCentral calls." }))
        : null,
      v.ringcentral_transport === "websocket" && v.parts.subscription?.state === "off"
        ? null
        : this.partCard("subscription", "RingCentral subscription", "phone", v.parts.subscription, v.ringcentral_webhook_url ? this.copyRow("Webhook", v.ringcentral_webhook_url) : null),
      this.partCard("notifications", "Notifications", "bell", v.parts.notifications, null),
      this.partCard("backfill", "Missed-call catch-up", "history", v.parts.backfill, h("p", { class: "card-note", text: "Fetches calls from the RingCentral call log that did not arrive live (for example while the computer was off)." }),
        { text: "Needs the RingCentral client ID, client secret and JWT.", fix: "ringcentral" }),
      this.storageCard(v),
      this.partCard("credentials", "Credentials", "key", v.parts.credentials, null),
    ].filter((c): c is HTMLElement => c !== null));
    if (focused) this.el.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(focused)}"]`)?.focus();
  }

  private cardShell(key: string, title: string, ic: IconName, tone: Tone, stateText: string, ...body: (Node | null)[]): HTMLElement {
    const titleId = `health-${key}-title`;
    return h("article", { class: `card health-card tone-${tone}`, "data-part": key, "aria-labelledby": titleId },
      h("header", { class: "hc-head" },
        h("span", { class: "hc-icon" }, icon(ic)),
        h("h3", { id: titleId, text: title }),
        h("span", { class: `state-pill tone-${tone}`, "data-state": stateText.toLowerCase() }, h("span", { class: "badge-dot" }), stateText)),
      ...body);
  }

  private partCard(key: string, title: string, ic: IconName, part: PartStatus | undefined, extra: Node | null, missing?: { text: string; fix: string }): HTMLElement {
    if (!part) {
      // A part that never reported: the engine is stopped (the banner says why), the part is
      // not set up (say what it needs), or it is still starting.
      if (this.engineStopped) {
        return this.cardShell(key, title, ic, "neutral", "Stopped", h("p", { class: "hc-detail muted", text: "CallPop is not running: the reason is above." }));
      }
      if (missing) {
        return this.cardShell(key, title, ic, "neutral", "Not set up", h("p", { class: "hc-detail", text: missing.text }), extra,
          h("div", { class: "hc-actions" }, this.fixButton(missing.fix, false)));
      }
      return this.cardShell(key, title, ic, "neutral", "Starting", h("p", { class: "hc-detail muted", text: "Starting…" }));
    }
    const tone = stateTone(part.state);
    // A setting fixes it (refused credentials, an address nothing answers at): open it, rather
    // than offer a retry that fails the same way.
    const action = part.fix ? null : actionFor(key, part.state);
    const body: (Node | null)[] = [
      part.detail && part.detail === healthUrl(key) ? null : h("p", { class: "hc-detail", text: part.detail || stateLabel(part.state) }),
      h("p", { class: "hc-since", title: formatDateTime(part.since) }, icon("clock"), `Since ${formatAgo(part.since)}`),
      extra,
    ];
    if (part.fix) body.push(h("div", { class: "hc-actions" }, this.fixButton(part.fix, tone === "error")));
    else if (action) body.push(h("div", { class: "hc-actions" }, this.actionButton(action, tone === "error")));
    return this.cardShell(key, title, ic, tone, stateLabel(part.state), ...body);
  }

  private fixButton(section: string, primary: boolean): HTMLElement {
    return h("button", { type: "button", class: `btn${primary ? " btn-primary" : ""}`, "data-fix": section, "data-focus-key": `fix-${section}`, onclick: () => this.onFix(section) },
      icon("sliders"), FIX_LABEL[section] ?? "Open Settings");
  }

  private actionButton(a: ActionSpec, primary: boolean): HTMLElement {
    const busy = this.busy.has(a.action);
    const btn = h("button", { type: "button", class: `btn${primary ? " btn-primary" : ""}${busy ? " is-busy" : ""}`, disabled: busy, "data-action": a.action, "data-focus-key": `action-${a.action}` }, icon(a.icon), a.label);
    btn.addEventListener("click", async () => {
      this.busy.add(a.action);
      btn.disabled = true;
      btn.classList.add("is-busy");
      try {
        const r = await commands.runHealthAction(a.action);
        toast(r.message || (r.ok ? `${a.label}: done` : `${a.label} failed`), r.ok ? "success" : "error");
      } catch (e) {
        toastError(`${a.label} failed`, e);
      } finally {
        this.busy.delete(a.action);
        this.render(health.value);
      }
    });
    return btn;
  }

  private copyRow(label: string, value: string): HTMLElement {
    return h("div", { class: "hc-copy" },
      h("span", { class: "hc-copy-label", text: label }),
      h("span", { class: "hc-copy-value mono", text: value, title: value }),
      h("button", { type: "button", class: "icon-btn", "aria-label": `Copy ${label}`, title: "Copy", "data-focus-key": `copy-${label}`, onclick: () => copyText(value).then(() => toast(`${label} copied`, "success"), (e) => toastError("Couldn't copy", e)) }, icon("copy")));
  }

  private receiverCard(v: HealthView): HTMLElement {
    const rows: [string, ProviderCounters][] = [["RingCentral", v.ringcentral], ["Ringotel", v.ringotel]];
    const problems = rows.some(([, c]) => c.unauthorized > 0 || c.quarantined > 0 || c.rejected > 0);
    const noToken = rows.filter(([, c]) => !c.token_required).map(([n]) => n);
    const tone: Tone = v.listen ? (problems || noToken.length ? "warn" : "ok") : "error";
    const table = h("table", { class: "counters" },
      h("thead", null, h("tr", null, h("th", { scope: "col", text: "" }), ...[["Accepted", "Calls and updates stored"], ["Repeats", "Sent twice; stored once"], ["Wrong token", "Refused: the sender's token does not match this desk's"], ["Refused", "Refused: not a delivery CallPop takes"], ["Unreadable", "Stored but not understood; kept to be read again after an update"]].map(([t, tip]) => h("th", { scope: "col", text: t, title: tip })), h("th", { scope: "col", text: "Last delivery" }))),
      h("tbody", null, ...rows.map(([name, c]) => h("tr", { "data-provider": name.toLowerCase() },
        h("th", { scope: "row", text: name }),
        h("td", { text: formatCount(c.accepted) }),
        h("td", { text: formatCount(c.duplicates) }),
        h("td", { class: c.unauthorized ? "is-warn" : undefined, text: formatCount(c.unauthorized) }),
        h("td", { class: c.rejected ? "is-warn" : undefined, text: formatCount(c.rejected) }),
        h("td", { class: c.quarantined ? "is-warn" : undefined, text: formatCount(c.quarantined) }),
        h("td", { class: "last", title: c.last_accepted_at ? formatDateTime(c.last_accepted_at) : "", text: c.last_accepted_at ? formatAgo(c.last_accepted_at) : "never" })))));
    const notes: Node[] = [];
    if (noToken.length) notes.push(h("p", { class: "card-note is-warn" }, icon("alert"), `Webhook token check is off for ${noToken.join(" and ")}: anyone who knows the URL can post calls.`));
    if (problems) notes.push(h("p", { class: "card-note" }, "“Wrong token” usually means the phone system was set up with another token (for Ringotel, copy it from Settings). “Unreadable” deliveries are kept and read again after an update of CallPop (callpop events replay)."));
    return this.cardShell("receiver", "Receiver", "server", tone, v.listen ? "Listening" : "Not listening",
      h("p", { class: "hc-detail" }, v.listen ? h("span", null, "Local address ", h("span", { class: "mono", text: v.listen })) : "The webhook receiver is not running."),
      h("div", { class: "table-scroll" }, table), ...notes);
  }

  private storageCard(v: HealthView): HTMLElement {
    if (v.storage_error) {
      return this.cardShell("storage", "Storage", "database", "error", "Error",
        h("p", { class: "hc-detail", text: v.storage_error_since ? `${v.storage_error} (since ${formatDateTime(v.storage_error_since)})` : v.storage_error }),
        h("p", { class: "card-note", text: "Deliveries are not acknowledged while the history cannot be written. RingCentral does not send them again; once the history can be written, the call-log backfill fills in the calls. Check free disk space and the data folder's permissions." }));
    }
    const restarts = v.writer_restarts > 0
      ? h("p", { class: "card-note is-warn", "data-testid": "writer-restarts" }, icon("alert"),
        `The history's writer stopped ${v.writer_restarts === 1 ? "once" : `${v.writer_restarts} times`} after a bug and was restarted${v.writer_last_failure ? ` (last: ${v.writer_last_failure})` : ""}. Calls are stored again; please send us the log.`)
      : null;
    return this.cardShell("storage", "Storage", "database", "ok", "OK", h("p", { class: "hc-detail", text: "The call history is being written normally." }), restarts);
  }
}

let currentUrls: Record<string, string | null> = {};
function healthUrl(part: string): string | null {
  return currentUrls[part] ?? null;
}

function summaryLine(v: HealthView): string {
  const issues: string[] = [];
  for (const [k, p] of Object.entries(v.parts)) {
    const t = stateTone(p.state);
    if (t === "error" || t === "warn") issues.push(`${partName(k)}: ${stateLabel(p.state).toLowerCase()}`);
  }
  if (v.storage_error) issues.push("storage error");
  if (issues.length) return issues.join(" · ");
  if (v.ringcentral_transport === "websocket" && v.parts.websocket?.state === "active") return "Connected to RingCentral over WebSocket; nothing needs attention.";
  return v.parts.subscription?.state === "active"
    ? "Webhooks are arriving and the subscription is healthy."
    : "Receiving webhooks; nothing needs attention.";
}

export function partName(k: string): string {
  return ({ tunnel: "Public URL", subscription: "Subscription", websocket: "RingCentral connection", notifications: "Notifications", backfill: "Missed-call catch-up", credentials: "Credentials" } as Record<string, string>)[k] ?? k;
}
