// Hub: one PC receives the dealership's calls and passes them to the desks on the network.
// Standalone: join a hub (found on the network or typed) or make this PC the hub. Hub: add a
// desk (a one-time code), see and remove desks. Desk: the link to the hub, leave it.
import { commands, type HubPanel, type PairingCode, type FoundHubRow } from "../bindings";
import { h, clear, icon, copyText, errorMessage } from "../dom";
import { confirmChanges } from "../confirm";
import { formatAgo, formatTimeOfDay } from "../format";
import { health } from "../state";
import { toast, toastError } from "../toast";

const LINK_TEXT: Record<string, string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting",
  identity_changed: "The hub's identity changed",
  removed: "Removed from the hub",
  update_needed: "Update needed",
};

export class HubPage {
  readonly el: HTMLElement;
  private content: HTMLElement;
  private panel: HubPanel | null = null;
  private code: PairingCode | null = null;
  private found: FoundHubRow[] | null = null;
  private busy = false;
  /** Bumped by every load and action: an answer older than the newest is dropped. */
  private gen = 0;
  /** Called after this CallPop changed role (Settings and Health must be read again). */
  onRoleChanged: () => void = () => undefined;

  constructor() {
    this.content = h("div", { class: "settings-content hub-content" });
    this.el = h("section", { class: "view view-hub", "aria-label": "Hub" }, h("div", { class: "hub-scroll" }, this.content));
    // A desk's link and a hub's desks change with health. Health moves with every delivery:
    // the tab is read again only while shown, and redrawn only when what it shows changed
    // (typing in it is never wiped by a desk's "last seen" moving).
    health.subscribe(() => {
      if (this.el.hidden || document.hidden || this.busy || !this.panel || this.panel.role === "standalone") return;
      void this.load(true);
    });
  }

  /** What the tab shows, for deciding whether to redraw. */
  private static shape(p: HubPanel): string {
    return JSON.stringify([p.role, p.hub_name, p.address, p.identity, p.problem, p.link?.state, p.link?.problem, p.link?.hub_receiving,
      p.desks.map((d) => [d.name, d.connected, d.removed, d.address])]);
  }

  async load(quiet = false): Promise<void> {
    const gen = ++this.gen;
    try {
      const panel = await commands.getHub();
      if (gen !== this.gen) return;
      const same = quiet && this.panel && HubPage.shape(this.panel) === HubPage.shape(panel);
      this.panel = panel;
      if (same) return;
    } catch (e) {
      if (quiet) return;
      clear(this.content);
      this.content.append(h("div", { class: "empty" }, icon("alert", "icon empty-icon"), h("p", { class: "empty-title", text: "Hub unavailable" }), h("p", { class: "empty-text", text: errorMessage(e) }),
        h("button", { type: "button", class: "btn", text: "Try again", onclick: () => void this.load() })));
      return;
    }
    this.draw();
  }

  private card(title: string, intro: string, ...children: (Node | null)[]): HTMLElement {
    return h("section", { class: "card" },
      h("header", { class: "card-head" }, h("h2", { text: title }), h("p", { class: "card-intro", text: intro })),
      h("div", { class: "card-body" }, ...children));
  }

  private draw(): void {
    const p = this.panel;
    if (!p) return;
    clear(this.content);
    if (p.role === "desk") this.drawDesk(p);
    else if (p.role === "hub") this.drawHub(p);
    else this.drawStandalone();
  }

  private async act<T>(what: string, run: () => Promise<T>): Promise<T | null> {
    if (this.busy) return null;
    this.busy = true;
    this.gen++;
    this.el.setAttribute("aria-busy", "true");
    // Every button waits for the one that runs: a second click would do nothing.
    const buttons = [...this.content.querySelectorAll("button")].filter((b) => !b.disabled);
    buttons.forEach((b) => (b.disabled = true));
    try {
      return await run();
    } catch (e) {
      toastError(what, e);
      return null;
    } finally {
      buttons.forEach((b) => (b.disabled = false));
      this.busy = false;
      this.el.removeAttribute("aria-busy");
    }
  }

  /** After a change of role: the new panel, and the rest of the window told. */
  private changed(panel: HubPanel): void {
    this.panel = panel;
    this.code = null;
    this.draw();
    this.onRoleChanged();
  }

  // ---- Standalone
  private drawStandalone(): void {
    const address = h("input", { class: "input", id: "hub-address", placeholder: "192.168.1.10:8788", autocomplete: "off", spellcheck: "false", "data-testid": "join-address" });
    const code = h("input", { class: "input", id: "hub-code", placeholder: "K7M2Q-9XH4P", autocomplete: "off", spellcheck: "false", "data-testid": "join-code" });
    const name = h("input", { class: "input", id: "hub-name", placeholder: "Sales 3", "data-testid": "join-name" });
    const found = h("div", { class: "hub-found", "data-testid": "found-hubs" });
    const drawFound = () => {
      clear(found);
      if (this.found === null) return;
      if (this.found.length === 0) {
        found.append(h("p", { class: "card-note", text: "No hub answered on this network. Type the hub's address instead: the hub's Hub page shows it with the code." }));
        return;
      }
      for (const hub of this.found) {
        found.append(h("button", { type: "button", class: "hub-found-item", "data-testid": "found-hub", onclick: () => { address.value = hub.address; code.focus(); } },
          icon("server"), h("span", { class: "hub-found-name", text: hub.name }), h("span", { class: "muted", text: `${hub.address} · identity ${hub.identity}` })));
      }
    };
    drawFound();
    const search = h("button", { type: "button", class: "btn", "data-testid": "find-hubs", onclick: async () => {
      search.disabled = true;
      search.textContent = "Looking…";
      const hubs = await this.act("Couldn't look for hubs", () => commands.findHubs());
      search.disabled = false;
      search.textContent = "Find hubs on this network";
      if (hubs) { this.found = hubs; drawFound(); }
    } }, "Find hubs on this network");
    const join = h("button", { type: "button", class: "btn btn-primary", "data-testid": "join-hub", text: "Join the hub", onclick: async () => {
      if (!address.value.trim() || !code.value.trim()) {
        toast("Type the hub's address and the pairing code shown on the hub.", "error");
        return;
      }
      const panel = await this.act("Couldn't join the hub", () => commands.joinHub({ address: address.value.trim(), code: code.value.trim(), name: name.value.trim() || "Desk" }));
      if (panel) {
        toast(`Joined the hub “${panel.hub_name ?? ""}”.`, "success");
        this.changed(panel);
      }
    } });
    this.content.append(
      this.card("Join the dealership's hub", "At a dealership with several desks, one PC is the hub: it receives every call and passes it on to the desks. On the hub, open Hub and choose Add a desk for a code.",
        h("div", { class: "field" }, h("span", { class: "label", text: "Hubs on this network" }), search, found),
        h("div", { class: "field" }, h("label", { class: "label", for: "hub-address", text: "Hub address" }), address),
        h("div", { class: "field" }, h("label", { class: "label", for: "hub-code", text: "Pairing code" }), code),
        h("div", { class: "field" }, h("label", { class: "label", for: "hub-name", text: "This desk's name" }), name),
        h("p", { class: "card-note", text: "Joining keeps this desk's calls. Its own RingCentral subscription and public address are no longer used: calls come from the hub." }),
        h("div", { class: "hc-actions" }, join)),
      this.card("Make this PC the hub", "Choose a PC that is on during business hours. It keeps receiving calls as now and serves the desks on the network (TCP port 8788).",
        h("div", { class: "hc-actions" }, h("button", { type: "button", class: "btn", "data-testid": "become-hub", text: "Make this PC the hub", onclick: async () => {
          const panel = await this.act("Couldn't make this PC the hub", () => commands.setHub(true));
          if (panel) this.changed(panel);
        } }))));
  }

  // ---- Hub
  private drawHub(p: HubPanel): void {
    const codeBox = h("div", { class: "hub-code", "data-testid": "pairing" });
    const drawCode = () => {
      clear(codeBox);
      const c = this.code;
      if (!c) return;
      codeBox.append(
        h("p", { class: "hub-code-value", "data-testid": "pairing-code", text: c.code }),
        h("p", null, "On the new desk, open Hub, choose ", h("b", { text: "Join the hub" }), " and type the address ", h("b", { "data-testid": "pairing-address", text: c.address }), " and this code."),
        h("p", { class: "muted", text: `Identity ${c.identity} · valid until ${formatTimeOfDay(c.expires_at)}, for one desk.` }),
        h("button", { type: "button", class: "btn btn-small", onclick: () => void copyText(`${c.address} ${c.code}`).then(() => toast("Copied.", "success")) }, icon("copy"), "Copy"));
    };
    drawCode();
    const name = h("input", { class: "input", id: "new-desk-name", placeholder: "Sales 3 (optional)", "data-testid": "new-desk-name" });
    const add = h("button", { type: "button", class: "btn btn-primary", "data-testid": "add-desk", onclick: async () => {
      const code = await this.act("Couldn't make a pairing code", () => commands.hubAddDesk(name.value.trim() || null));
      if (code) { this.code = code; drawCode(); }
    } }, icon("plus"), "Add a desk");
    const rows = p.desks.map((d) => h("tr", { "data-testid": "desk-row", "data-desk": d.name },
      h("td", { text: d.name }),
      h("td", null, h("span", { class: `pill tone-${d.removed ? "neutral" : d.connected ? "ok" : "warn"}`, text: d.removed ? "Removed" : d.connected ? "Connected" : "Not connected" })),
      h("td", { class: "muted", text: d.address ?? "—" }),
      h("td", { class: "muted", text: d.last_seen ? formatAgo(d.last_seen) : "never" }),
      h("td", null, d.removed ? null : h("button", { type: "button", class: "btn btn-small", "data-testid": "remove-desk", "aria-label": `Remove ${d.name}`, onclick: async () => {
        if (!(await confirmChanges(`Remove “${d.name}”?`, ["It stops getting calls at once and must be paired again to come back. Its calls stay on it."], "Remove"))) return;
        const panel = await this.act("Couldn't remove the desk", () => commands.hubRemoveDesk(d.name));
        if (panel) { this.panel = panel; this.draw(); }
      } }, icon("trash"), "Remove"))));
    const table = p.desks.length
      ? h("table", { class: "hub-desks", "data-testid": "desks" }, h("thead", null, h("tr", null, h("th", { text: "Desk" }), h("th", { text: "Status" }), h("th", { text: "Address" }), h("th", { text: "Last seen" }), h("th"))), h("tbody", null, ...rows))
      : h("p", { class: "card-note", "data-testid": "no-desks", text: "No desk has joined yet." });
    this.content.append(
      this.card(`This PC is the hub “${p.hub_name ?? ""}”`, `Desks join at ${p.address ?? "this PC's address, port 8788"}. Identity ${p.identity ?? "…"}: a desk shows the same when it joins.`,
        p.problem ? h("p", { class: "card-note is-warn" }, icon("alert"), p.problem) : null,
        h("div", { class: "field" }, h("label", { class: "label", for: "new-desk-name", text: "New desk's name" }), h("div", { class: "control-row" }, name, add)),
        codeBox),
      this.card("Desks", "Every desk that joined this hub. A removed desk gets no more calls.", table,
        h("div", { class: "hc-actions" }, h("button", { type: "button", class: "btn", "data-testid": "stop-hub", text: "Stop being the hub", onclick: async () => {
          if (!(await confirmChanges("Stop being the hub?", ["The desks stop getting calls until this PC is the hub again."], "Stop"))) return;
          const panel = await this.act("Couldn't change the role", () => commands.setHub(false));
          if (panel) this.changed(panel);
        } }))));
  }

  // ---- Desk
  private drawDesk(p: HubPanel): void {
    const link = p.link;
    const state = link?.state ?? "connecting";
    const tone = state === "connected" ? (link?.hub_receiving === false ? "warn" : "ok") : state === "connecting" || state === "reconnecting" ? "warn" : "error";
    const status = h("div", { class: `health-banner tone-${tone}`, "data-testid": "link", "data-state": state },
      icon(tone === "ok" ? "check" : "alert", "icon banner-icon"),
      h("div", null,
        h("h2", { text: LINK_TEXT[state] ?? state }),
        h("p", { "data-testid": "link-detail", text: link?.problem ?? (link?.hub_receiving === false ? `The hub is not receiving calls: ${link.hub_headline ?? ""}` : link?.hub_receiving ? "The hub is receiving calls." : "") })));
    this.content.append(status,
      this.card(`This desk gets its calls from the hub “${p.hub_name ?? ""}”`, `At ${p.address ?? ""} as “${p.desk_name ?? ""}”. Identity ${p.identity ?? ""}.`,
        h("p", { class: "card-note", text: "The call log, search and export work here even while the hub is off. RingCentral, Ringotel and the public address are set on the hub." }),
        h("div", { class: "hc-actions" }, h("button", { type: "button", class: "btn", "data-testid": "leave-hub", text: "Leave the hub", onclick: async () => {
          if (!(await confirmChanges("Leave the hub?", ["This desk stops getting calls from the hub and works on its own again. The calls it has stay."], "Leave"))) return;
          const panel = await this.act("Couldn't leave the hub", () => commands.leaveHub());
          if (panel) {
            toast(panel.problem ? "Left the hub; it could not be told." : "Left the hub.", panel.problem ? "info" : "success", panel.problem ? { detail: panel.problem } : {});
            this.changed(panel);
          }
        } }))));
  }
}
