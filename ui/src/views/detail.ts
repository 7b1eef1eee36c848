// The call detail panel: who, outcome, actions, facts, extensions, timeline, raw deliveries.
import { commands, type CallDetail, type CallView, type DeliveryView, type TimelineEntry } from "../bindings";
import { h, clear, icon, copyText, errorMessage, nextId } from "../dom";
import { cleanText, formatDateTime, formatDuration, formatTimeOfDay, telHref } from "../format";
import { counterpart, DIRECTION_LABEL, directionIcon, isLive, ourSide, primaryText, resultBadge, safeHttpUrl, secondaryText } from "../call-display";
import { toast, toastError } from "../toast";

export class DetailPanel {
  readonly el: HTMLElement;
  private body: HTMLElement;
  private titleId = nextId("detail-title");
  private openId: number | null = null;
  private gen = 0;
  private refreshTimer = 0;
  /** Whether the person opened "Advanced" (kept from call to call). */
  private advancedOpen = false;
  onClose: () => void = () => undefined;

  constructor() {
    this.body = h("div", { class: "detail-inner" });
    this.el = h("aside", { class: "detail", hidden: true, "aria-labelledby": this.titleId, tabindex: -1 }, this.body);
    this.el.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        this.close();
      }
    });
  }

  get currentId(): number | null {
    return this.openId;
  }

  get isOpen(): boolean {
    return !this.el.hidden;
  }

  /** Shows a call: renders what the list already knows at once, then the full detail. */
  open(id: number, known: CallView | null): void {
    const same = this.openId === id && this.isOpen;
    this.openId = id;
    this.el.hidden = false;
    if (!same) {
      this.body.scrollTop = 0;
      if (known) this.render({ call: known, crm_url: null, timeline: [], deliveries: [], remote_note: null }, true);
      else this.renderLoading();
    }
    void this.load(id);
  }

  close(): void {
    if (!this.isOpen) return;
    this.el.hidden = true;
    this.openId = null;
    this.gen++;
    this.onClose();
  }

  /** The open call changed live: fetch its detail again (coalesced). */
  callChanged(id: number): void {
    if (this.openId !== id || !this.isOpen) return;
    window.clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => {
      if (this.openId === id) void this.load(id);
    }, 250);
  }

  private async load(id: number): Promise<void> {
    const gen = ++this.gen;
    try {
      const d = await commands.getCall(id);
      if (gen !== this.gen || this.openId !== id) return;
      const openSections = [...this.body.querySelectorAll<HTMLDetailsElement>("details[open]")].map((d) => d.dataset.key);
      const scroll = this.body.scrollTop;
      this.render(d, false);
      for (const key of openSections) {
        const det = this.body.querySelector<HTMLDetailsElement>(`details[data-key="${CSS.escape(key ?? "")}"]`);
        if (det) det.open = true;
      }
      this.body.scrollTop = scroll;
    } catch (e) {
      if (gen !== this.gen) return;
      if (!this.body.querySelector(".detail-head")) this.renderError(errorMessage(e), id);
      else toastError("Couldn't load the call's details", e);
    }
  }

  private closeButton(): HTMLElement {
    return h("button", { type: "button", class: "icon-btn detail-close", "aria-label": "Close details (Esc)", title: "Close (Esc)", onclick: () => this.close() }, icon("x"));
  }

  private renderLoading(): void {
    clear(this.body);
    this.body.append(
      h("div", { class: "detail-toolbar" }, h("h2", { id: this.titleId, class: "visually-hidden", text: "Call details" }), this.closeButton()),
      h("div", { class: "detail-loading", "aria-busy": "true" }, h("div", { class: "skel skel-title" }), h("div", { class: "skel skel-line" }), h("div", { class: "skel skel-line short" })),
    );
  }

  private renderError(msg: string, id: number): void {
    clear(this.body);
    this.body.append(
      h("div", { class: "detail-toolbar" }, h("h2", { id: this.titleId, class: "detail-title-small", text: "Call details" }), this.closeButton()),
      h("div", { class: "empty" }, icon("alert", "icon empty-icon"), h("p", { class: "empty-title", text: "Couldn't load this call" }), h("p", { class: "empty-text", text: msg }),
        h("button", { type: "button", class: "btn", text: "Try again", onclick: () => this.open(id, null) })),
    );
  }

  private render(d: CallDetail, partial: boolean): void {
    const c = d.call;
    clear(this.body);
    const badge = resultBadge(c);
    const who = counterpart(c);
    const tel = c.direction === "internal" ? null : telHref(who.e164, who.raw);

    const actions = h("div", { class: "detail-actions" });
    if (tel) {
      const number = who.number || who.e164 || "";
      const callBack: HTMLButtonElement = h("button", {
        type: "button", class: "btn btn-primary", "data-action": "call-back",
        onclick: () => void callBackTo(tel, who.e164 ?? number, number, callBack),
      }, icon("phone"), "Call back");
      actions.append(callBack);
      actions.append(h("button", {
        type: "button", class: "btn", onclick: () => copyText(who.e164 ?? who.number).then(() => toast("Number copied", "success"), (e) => toastError("Couldn't copy", e)),
      }, icon("copy"), "Copy number"));
    }
    // Filled by the engine exactly as the popup's "Open in CRM" button fills it.
    const crm = d.crm_url ? safeHttpUrl(d.crm_url) : null;
    if (crm) actions.append(h("a", { class: "btn", href: crm, rel: "noopener noreferrer" }, icon("external"), "Open in CRM"));

    const head = h("header", { class: "detail-head" },
      h("div", { class: "detail-toolbar" },
        h("div", { class: `dir-chip dir-${c.direction} tone-${badge.tone}` }, icon(directionIcon(c)), DIRECTION_LABEL[c.direction]),
        this.closeButton()),
      h("h2", { id: this.titleId, class: "detail-title", text: primaryText(c), dir: "auto" }),
      h("div", { class: "detail-sub" },
        h("span", { class: "detail-number", text: secondaryText(c), dir: "auto" }),
        c.line_label ? h("span", { class: "pill", text: cleanText(c.line_label) }) : null),
      h("div", { class: "detail-status" },
        h("span", { class: `badge tone-${badge.tone}` }, h("span", { class: "badge-dot" }), badge.text),
        h("span", { class: "detail-when", text: formatDateTime(c.started_at) })),
      actions.childElementCount ? actions : null,
    );

    const facts = h("dl", { class: "facts" });
    const fact = (k: string, v: string | Node | null, mono = false) => {
      if (v === null || v === "") return;
      facts.append(h("dt", { text: k }), h("dd", { class: mono ? "mono" : undefined }, v));
    };
    const us = ourSide(c);
    fact(c.direction === "outbound" ? "From line" : "Dialled", c.direction === "internal" ? null : [us.number, c.line_label ? `(${cleanText(c.line_label)})` : ""].filter(Boolean).join(" ") || null);
    fact("Started", formatDateTime(c.started_at));
    // In words a receptionist uses: a timeline line "Connected" (voicemail, an IVR) is not
    // somebody at the dealership answering.
    fact("Answered", c.answered_at ? formatDateTime(c.answered_at)
      : isLive(c) ? null
      : c.result === "voicemail" ? "No one — the caller reached voicemail"
      : c.result === "no_end_reported" ? "Not known: the phone system never reported the end"
      : "No one answered");
    fact("Ended", c.ended_at ? formatDateTime(c.ended_at) : isLive(c) ? "In progress" : null);
    fact("Ring time", formatDuration(c.ring_seconds));
    fact("Talk time", formatDuration(c.talk_seconds));
    if (c.voicemail_seconds != null) fact("Message length", formatDuration(c.voicemail_seconds));
    fact("Phone system", c.provider === "ringcentral" ? "RingCentral" : "Ringotel");
    // What support and the IT person need, behind "Advanced": ids, counts, raw deliveries.
    const technical = h("dl", { class: "facts" });
    technical.append(h("dt", { text: "Call key" }), h("dd", { class: "mono", text: c.call_key }));
    technical.append(h("dt", { text: "Events" }), h("dd", { text: `${c.event_count} (last ${formatTimeOfDay(c.last_event_at)})` }));

    const sections: HTMLElement[] = [h("section", { class: "detail-section" }, h("h3", { text: "Call" }), facts)];

    const rec = safeHttpUrl(c.recording_url);
    const vm = safeHttpUrl(c.voicemail_url);
    if (rec || vm || c.voicemail_id) {
      const media = h("div", { class: "media-links" });
      if (rec) media.append(h("a", { class: "media-link", href: rec, rel: "noopener noreferrer", "data-kind": "recording" }, icon("play"), h("span", null, h("strong", { text: "Call recording" }), h("small", { text: "Opens in your browser" }))));
      const length = c.voicemail_seconds != null ? formatDuration(c.voicemail_seconds) : null;
      if (c.provider === "ringcentral" && c.voicemail_id) {
        // RingCentral serves the audio only to a signed-in app: CallPop fetches it and hands it
        // to the audio player (a browser would get "unauthorized").
        const play: HTMLButtonElement = h("button", { type: "button", class: "media-link", "data-kind": "voicemail", onclick: () => void playVoicemail(c.id, play) },
          icon("play"), h("span", null, h("strong", { text: "Play voicemail" }), h("small", { text: length ? `${length} · opens in your audio player` : "Opens in your audio player" })));
        media.append(play);
      } else if (vm) {
        media.append(h("a", { class: "media-link", href: vm, rel: "noopener noreferrer", "data-kind": "voicemail" }, icon("voicemail"), h("span", null, h("strong", { text: "Voicemail message" }), h("small", { text: length ?? "Opens in your browser" }))));
      } else if (c.voicemail_id) {
        media.append(h("div", { class: "media-link is-static" }, icon("voicemail"), h("span", null, h("strong", { text: "Voicemail left" }), h("small", { class: "mono", text: `Message ${c.voicemail_id}` }))));
      }
      sections.push(h("section", { class: "detail-section" }, h("h3", { text: "Recording & voicemail" }), media));
    }

    if (c.extensions.length) {
      const list = h("ul", { class: "ext-list" });
      for (const p of c.extensions) {
        // The desk's own outcome once the call is over (a transfer it missed is its missed call).
        const status = p.answered ? "Answered"
          : p.outcome === "missed" ? "Missed"
          : p.outcome === "voicemail" ? "Missed (voicemail)"
          : p.rang ? "Rang" : p.state ? p.state[0].toUpperCase() + p.state.slice(1) : "—";
        list.append(h("li", { class: p.answered ? "is-answered" : undefined },
          h("span", { class: "ext-num mono", text: cleanText(p.extension_number ?? p.extension_id ?? "?") }),
          h("span", { class: "ext-name", text: cleanText(p.name) || "—", dir: "auto" }),
          h("span", { class: "ext-status", text: status }),
          h("span", { class: "ext-talk mono", text: p.talk_seconds ? formatDuration(p.talk_seconds) : "" })));
      }
      sections.push(h("section", { class: "detail-section" }, h("h3", { text: "Extensions" }), list));
    }

    if (partial) {
      sections.push(h("section", { class: "detail-section", "aria-busy": "true" }, h("h3", { text: "Timeline" }), h("div", { class: "skel skel-line" }), h("div", { class: "skel skel-line short" })));
    } else {
      sections.push(h("section", { class: "detail-section", "data-section": "timeline" }, h("h3", { text: "Timeline" }),
        d.remote_note ? h("p", { class: "muted", "data-testid": "remote-note", text: d.remote_note }) : renderTimeline(d.timeline)));
    }
    const advanced = h("details", { class: "detail-section detail-advanced", "data-testid": "advanced", open: this.advancedOpen },
      h("summary", { text: "Advanced" }),
      technical,
      partial ? null : h("section", { class: "detail-subsection", "data-section": "deliveries" },
        h("h3", null, "Raw deliveries ", h("span", { class: "count", text: String(d.deliveries.length) })),
        d.deliveries.length ? h("div", { class: "deliveries" }, ...d.deliveries.map(renderDelivery)) : h("p", { class: "muted", text: "No deliveries stored for this call." })));
    advanced.addEventListener("toggle", () => { this.advancedOpen = advanced.open; });
    sections.push(advanced);
    this.body.append(head, h("div", { class: "detail-sections" }, ...sections));
  }
}


function renderTimeline(entries: TimelineEntry[]): HTMLElement {
  if (!entries.length) return h("p", { class: "muted", text: "No events yet." });
  const ol = h("ol", { class: "timeline" });
  for (const t of entries) {
    const state = t.state ?? "other";
    // A party id means nothing to people: a leg without a desk is the caller's line.
    const what = [t.extension ? `Ext. ${cleanText(t.extension)}` : "Phone line", stateLabel(state)].filter(Boolean).join(" · ");
    const code = [t.code, t.reason].filter(Boolean).map((x) => cleanText(x)).join(" / ");
    ol.append(h("li", { class: `tl tl-${state}` },
      h("span", { class: "tl-dot", "aria-hidden": "true" }),
      h("time", { class: "tl-time mono", dateTime: t.at, text: formatTimeOfDay(t.at), title: formatDateTime(t.at) }),
      h("div", { class: "tl-body" },
        h("div", { class: "tl-what", text: what }),
        h("div", { class: "tl-meta", text: [code, sourceLabel(t.source)].filter(Boolean).join(" · ") }))));
  }
  return ol;
}

function stateLabel(s: string): string {
  switch (s) {
    case "ringing": return "Ringing";
    case "connected": return "Connected";
    case "held": return "On hold";
    case "voicemail": return "Voicemail";
    case "ended": return "Ended";
    default: return "Other";
  }
}

function sourceLabel(s: string): string {
  const map: Record<string, string> = { telephony_session: "Telephony", presence: "Presence", call_log: "Call log", ringotel_start: "Ringotel start", ringotel_stop: "Ringotel stop", ringotel_recording: "Ringotel recording" };
  return map[s] ?? cleanText(s);
}

function renderDelivery(d: DeliveryView): HTMLElement {
  const body = h("div", { class: "delivery-body" });
  const det = h("details", { class: "delivery", "data-key": `delivery-${d.id}` },
    h("summary", null,
      icon("chevronRight", "icon chev"),
      h("span", { class: "delivery-kind", text: cleanText(d.kind) }),
      h("span", { class: "delivery-meta", text: `${d.provider === "ringcentral" ? "RingCentral" : "Ringotel"} · ${formatTimeOfDay(d.received_at)}${d.redeliveries ? ` · ${d.redeliveries}× redelivered` : ""}` })),
    body);
  // Bodies can be large: build the pretty-printed view only when first opened.
  det.addEventListener("toggle", () => {
    if (!det.open || body.childElementCount) return;
    const headers = Object.entries(d.headers ?? {});
    body.append(h("div", { class: "delivery-facts" },
      h("span", { class: "mono", text: `dedup ${d.dedup_key}` }),
      h("button", { type: "button", class: "btn btn-small btn-ghost", onclick: () => copyText(prettyJson(d.body)).then(() => toast("Body copied", "success"), (e) => toastError("Couldn't copy", e)) }, icon("copy"), "Copy body")));
    if (headers.length) {
      const dl = h("dl", { class: "headers mono" });
      for (const [k, v] of headers) dl.append(h("dt", { text: k }), h("dd", { text: v }));
      body.append(dl);
    }
    body.append(h("pre", { class: "json", tabindex: 0, "aria-label": "Delivery body" }, highlightJson(prettyJson(d.body))));
  });
  return det;
}

export function prettyJson(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

/** JSON syntax colouring built from text nodes (never parsed as HTML). */
export function highlightJson(text: string): DocumentFragment {
  const frag = document.createDocumentFragment();
  if (text.length > 200_000) {
    frag.append(text);
    return frag;
  }
  const re = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) frag.append(text.slice(last, m.index));
    const cls = m[1] ? (m[2] ? "j-key" : "j-str") : m[3] ? "j-lit" : "j-num";
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = m[1] ?? m[0];
    frag.append(span);
    if (m[2]) frag.append(m[2]);
    last = m.index + m[0].length;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}


/** Hands `tel` to the phone app; with none installed, copies the number to dial by hand. */
async function callBackTo(tel: string, copyable: string, shown: string, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  button.classList.add("is-busy");
  try {
    const outcome = await commands.openLink(tel);
    if (outcome === "opened") {
      toast(`Calling ${shown} with your phone app`, "success");
    } else {
      const copied = await copyText(copyable).then(() => true, () => false);
      toast("No phone app on this computer can place calls", "info", {
        detail: copied ? `${shown} is copied: dial it on your desk phone, or paste it into your phone app.` : `Dial ${shown} on your desk phone.`,
        timeout: 12000,
      });
    }
  } catch (e) {
    toastError("Couldn't start the call", e);
  } finally {
    button.disabled = false;
    button.classList.remove("is-busy");
  }
}

async function playVoicemail(id: number, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  button.classList.add("is-busy");
  try {
    await commands.playVoicemail(id);
    toast("Playing the voicemail in your audio player", "success");
  } catch (e) {
    toastError("Couldn't play the voicemail", e);
  } finally {
    button.disabled = false;
    button.classList.remove("is-busy");
  }
}
