// Settings: every field validated inline; engine-side FieldErrors shown on the matching field;
// secrets are write-only (the UI only ever knows whether one is set).
import { commands, type FieldError, type SettingsView as Settings } from "../bindings";
import { h, clear, icon, nextId, copyText, errorMessage, type IconName } from "../dom";
import { health, settings as settingsState } from "../state";
import { toast, toastError } from "../toast";
import {
  COUNTRIES, CRM_PLACEHOLDERS, LIMITS, checkExtension, crmTemplateWarning, fillCrmTemplate, formFromSettings, normalizeExtension,
  formKey, updateFromForm, validateForm, type SecretField, type SettingsForm,
} from "../validate";
import { confirmChanges } from "../confirm";

type Binding = { control: HTMLElement; error: HTMLElement; row?: HTMLElement };

const SECTIONS: { id: string; title: string; icon: IconName }[] = [
  { id: "ringcentral", title: "RingCentral", icon: "phone" },
  { id: "ringotel", title: "Ringotel", icon: "link" },
  { id: "tunnel", title: "Public URL", icon: "globe" },
  { id: "extensions", title: "Watched extensions", icon: "user" },
  { id: "lines", title: "Line labels", icon: "list" },
  { id: "popups", title: "Popups", icon: "bell" },
  { id: "general", title: "General", icon: "sliders" },
];

export class SettingsPage {
  readonly el: HTMLElement;
  private content: HTMLElement;
  private scroller: HTMLElement;
  private bar: HTMLElement;
  private saveBtn: HTMLButtonElement;
  private discardBtn: HTMLButtonElement;
  private statusEl: HTMLElement;
  private summary: HTMLElement;
  private base: Settings | null = null;
  private form: SettingsForm | null = null;
  private baseKey = "";
  private bindings = new Map<string, Binding>();
  private touched = new Set<string>();
  private serverErrors = new Map<string, string>();
  private submitted = false;
  private saving = false;
  private navButtons = new Map<string, HTMLElement>();
  /** Called when the unsaved-changes state flips. */
  onDirtyChange: (dirty: boolean) => void = () => undefined;
  private lastDirty = false;
  private statusMsg: { text: string; ok: boolean; key: string } | null = null;

  constructor() {
    const nav = h("nav", { class: "settings-nav", "aria-label": "Settings sections" });
    for (const s of SECTIONS) {
      const b = h("button", { type: "button", class: "nav-item", onclick: () => this.scrollTo(s.id) }, icon(s.icon), s.title);
      this.navButtons.set(s.id, b);
      nav.append(b);
    }
    this.summary = h("div", { class: "form-summary", role: "alert", hidden: true });
    this.content = h("div", { class: "settings-content" }, h("div", { class: "settings-loading" }, h("span", { class: "spinner" }), "Loading settings…"));
    this.scroller = h("div", { class: "settings-scroll" }, this.summary, this.content);
    this.statusEl = h("span", { class: "save-status", role: "status", "aria-live": "polite" });
    this.discardBtn = h("button", { type: "button", class: "btn", text: "Discard", disabled: true, onclick: () => this.discard() });
    this.saveBtn = h("button", { type: "submit", class: "btn btn-primary", text: "Save changes", disabled: true, "data-testid": "save" });
    this.bar = h("div", { class: "save-bar" }, this.statusEl, h("span", { class: "grow" }), this.discardBtn, this.saveBtn);
    const formEl = h("form", { class: "settings-form", novalidate: true, "aria-label": "Settings" }, this.scroller, this.bar);
    formEl.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.save();
    });
    formEl.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") {
        e.preventDefault();
        void this.save();
      }
      // Enter in a text field would submit the form; only the Save button (or Ctrl+S) saves.
      if (e.key === "Enter" && (e.target as HTMLElement).tagName === "INPUT" && (e.target as HTMLInputElement).type !== "submit") e.preventDefault();
    });
    this.el = h("section", { class: "view view-settings", "aria-label": "Settings" }, nav, formEl);
    health.subscribe(() => this.refreshWebhookUrls(), false);
    let spy = 0;
    this.scroller.addEventListener("scroll", () => {
      if (spy) return;
      spy = requestAnimationFrame(() => {
        spy = 0;
        this.markCurrentSection();
      });
    }, { passive: true });
    // Shown for the first time (or resized): mark the section in view.
    new ResizeObserver(() => this.markCurrentSection()).observe(this.scroller);
  }

  get dirty(): boolean {
    return this.form !== null && formKey(this.form) !== this.baseKey;
  }

  async load(): Promise<void> {
    try {
      const s = await commands.getSettings();
      this.setBase(s);
    } catch (e) {
      clear(this.content);
      this.content.append(h("div", { class: "empty" }, icon("alert", "icon empty-icon"), h("p", { class: "empty-title", text: "Couldn't load settings" }),
        h("p", { class: "empty-text", text: errorMessage(e) }), h("button", { type: "button", class: "btn", text: "Try again", onclick: () => void this.load() })));
      toastError("Couldn't load settings", e);
    }
  }

  private setBase(s: Settings): void {
    this.base = s;
    settingsState.set(s);
    this.form = formFromSettings(s);
    this.baseKey = formKey(this.form);
    this.touched.clear();
    this.serverErrors.clear();
    this.submitted = false;
    this.render();
  }

  private discard(): void {
    if (this.base) this.setBase(this.base);
    this.status("Changes discarded");
  }

  private markCurrentSection(): void {
    const box = this.scroller.getBoundingClientRect();
    // A hidden page has no layout: every section would look scrolled past.
    if (box.height === 0) return;
    const top = box.top + Math.min(160, box.height / 3);
    let current = SECTIONS[0].id;
    for (const sec of this.content.querySelectorAll<HTMLElement>("[data-section]")) {
      if (sec.getBoundingClientRect().top <= top) current = sec.dataset.section ?? current;
    }
    for (const [k, b] of this.navButtons) {
      b.classList.toggle("is-current", k === current);
      if (k === current) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
  }

  /** Shows a section (from Health's "fix it" button). */
  show(id: string): void {
    // After the page is visible, so the section has a layout to scroll to.
    requestAnimationFrame(() => this.scrollTo(id));
  }

  private scrollTo(id: string): void {
    const sec = this.content.querySelector<HTMLElement>(`[data-section="${id}"]`);
    if (!sec) return;
    this.scroller.scrollTop += sec.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top - 16;
    sec.querySelector<HTMLElement>("input, select, button, textarea")?.focus({ preventScroll: true });
    for (const [k, b] of this.navButtons) b.classList.toggle("is-current", k === id);
  }

  // ------------------------------------------------------------------------------------------
  // Rendering

  private render(): void {
    const f = this.form!;
    this.bindings.clear();
    clear(this.content);
    const hub = this.base!.managed_by_hub;
    if (hub) {
      // A desk gets its calls from its hub: the phone systems and the public address are set there.
      const managed = (id: string, title: string) => this.section(id, title, `Managed by the hub “${hub}”: set it on the hub.`,
        h("p", { class: "card-note", "data-testid": "managed-by-hub", text: "This desk gets its calls from the hub, so it needs no phone-system credentials or public address of its own." }));
      this.content.append(managed("ringcentral", "RingCentral"), managed("ringotel", "Ringotel"), managed("tunnel", "Public URL"),
        this.section("extensions", "Watched extensions", "Popups are shown for calls that ring these extensions. Leave empty to watch the whole account.", this.chips()),
        this.section("lines", "Dealership line labels", "Name the numbers customers dial, so a popup says “Sales” or “Service” instead of a number.", this.lineLabels()),
        this.popupsSection(),
        this.generalSection());
      this.refresh();
      this.markCurrentSection();
      return;
    }
    this.content.append(
      this.section("ringcentral", "RingCentral", "The RingEX account CallPop watches. Create a JWT app in the RingCentral developer console and paste its credentials here.",
        this.text("ringcentral.server", "Server URL", f.ringcentral.server, (v) => (f.ringcentral.server = v), { placeholder: "https://platform.ringcentral.com", help: "https://platform.ringcentral.com for production. http://127.0.0.1:PORT is allowed for a local test server.", mono: true, type: "url" }),
        this.text("ringcentral.client_id", "Client ID", f.ringcentral.client_id, (v) => (f.ringcentral.client_id = v), { mono: true, autocomplete: "off" }),
        this.secret("ringcentral.client_secret", "Client secret", this.base!.ringcentral.client_secret_set),
        this.secret("ringcentral.jwt", "JWT credential", this.base!.ringcentral.jwt_set, "The personal JWT of the user CallPop signs in as."),
        this.transportChoice(),
        this.testConnection(),
      ),
      this.section("ringotel", "Ringotel", "Ringotel posts call events to CallPop. In the Ringotel portal (Integrations → Webhooks), paste this webhook URL and this API token: CallPop accepts only webhooks that carry the token.",
        this.webhookUrl("ringotel"),
        this.secret("ringotel.api_token", "API token", this.base!.ringotel.api_token_set, this.base!.ringotel.api_token_from_environment
          ? "Set by CALLPOP_RINGOTEL_API_TOKEN, which wins over Settings: change it there. Copy it into the Ringotel portal's API token field."
          : "CallPop made this token. Copy it into the Ringotel portal's API token field; replace it only if you already use another token there.",
        () => commands.getRingotelToken().then((t) => t.token), this.base!.ringotel.api_token_from_environment),
      ),
      this.tunnelSection(),
      this.section("extensions", "Watched extensions", "Popups are shown for calls that ring these extensions. Leave empty to watch the whole account.", this.chips()),
      this.section("lines", "Dealership line labels", "Name the numbers customers dial, so a popup says “Sales” or “Service” instead of a number.", this.lineLabels()),
      this.popupsSection(),
      this.generalSection(),
    );
    this.refresh();
    this.markCurrentSection();
  }

  private section(id: string, title: string, intro: string, ...children: (Node | null)[]): HTMLElement {
    const hid = nextId("sec");
    return h("section", { class: "card settings-section", "data-section": id, "aria-labelledby": hid },
      h("header", { class: "card-head" }, h("h2", { id: hid, text: title }), h("p", { class: "card-intro", text: intro })),
      h("div", { class: "card-body" }, ...children));
  }

  private bind(path: string, control: HTMLElement, error: HTMLElement, row?: HTMLElement): void {
    this.bindings.set(path, { control, error, row });
    const ids = new Set((control.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean));
    ids.add(error.id);
    control.setAttribute("aria-describedby", [...ids].join(" "));
  }

  private errorEl(path: string): HTMLElement {
    return h("p", { class: "field-error", id: nextId("err"), hidden: true, "data-field": path });
  }

  private fieldShell(path: string, label: string, control: HTMLElement, help?: string, extra?: Node | null): HTMLElement {
    const id = control.id || nextId("f");
    control.id = id;
    const err = this.errorEl(path);
    const helpEl = help ? h("p", { class: "help", id: nextId("help"), text: help }) : null;
    if (helpEl) control.setAttribute("aria-describedby", helpEl.id);
    const wrap = h("div", { class: "field", "data-path": path }, h("label", { for: id, class: "label", text: label }), extra ? h("div", { class: "control-row" }, control, extra) : control, helpEl, err);
    this.bind(path, control, err, wrap);
    return wrap;
  }

  private text(path: string, label: string, value: string, set: (v: string) => void, o: { placeholder?: string; help?: string; mono?: boolean; type?: string; width?: "narrow" | "tiny"; inputMode?: string; autocomplete?: string; extra?: Node } = {}): HTMLElement {
    const input = h("input", {
      type: "text", class: `input${o.mono ? " mono" : ""}${o.width ? ` w-${o.width}` : ""}`, value, placeholder: o.placeholder ?? "",
      spellcheck: false, autocomplete: o.autocomplete ?? "off", inputMode: o.inputMode ?? (o.type === "url" ? "url" : "text"),
    });
    input.addEventListener("input", () => {
      set(input.value);
      this.serverErrors.delete(path);
      this.refresh();
    });
    input.addEventListener("blur", () => {
      this.touched.add(path);
      this.refresh();
    });
    return this.fieldShell(path, label, input, o.help, o.extra ?? null);
  }

  /** A secret the window may show (only the Ringotel token, which is made to be copied): hidden
   * until "Show", copyable without being shown. */
  private revealed(label: string, read: () => Promise<string | null>): HTMLElement {
    const value = h("code", { class: "secret-value mono", "data-testid": "secret-value", text: "••••••••••••••••" });
    let shown = false;
    const get = async (): Promise<string | null> => {
      try {
        const v = await read();
        if (!v) toast(`No ${label} is in force: Ringotel webhooks are not checked`, "error");
        return v;
      } catch (e) {
        toastError(`Couldn't read the ${label}`, e);
        return null;
      }
    };
    const show: HTMLButtonElement = h("button", { type: "button", class: "btn btn-small", text: "Show", "aria-label": `Show ${label}`, "aria-pressed": "false", onclick: async () => {
      if (shown) {
        value.textContent = "••••••••••••••••";
      } else {
        const v = await get();
        if (!v) return;
        value.textContent = v;
      }
      shown = !shown;
      show.textContent = shown ? "Hide" : "Show";
      show.setAttribute("aria-pressed", String(shown));
    } });
    const copy = h("button", { type: "button", class: "btn btn-small", "aria-label": `Copy ${label}`, onclick: async () => {
      const v = await get();
      if (v) await copyText(v).then(() => toast(`${label} copied`, "success"), (e) => toastError("Couldn't copy", e));
    } }, icon("copy"), "Copy");
    return h("span", { class: "secret-reveal" }, value, show, copy);
  }

  private secret(path: SecretField, label: string, isSet: boolean, help?: string, reveal?: () => Promise<string | null>, fixed = false): HTMLElement {
    const f = this.form!;
    const err = this.errorEl(path);
    const holder = h("div", { class: "secret" });
    const labelId = nextId("lbl");
    const helpEl = help ? h("p", { class: "help", id: nextId("help"), text: help }) : null;
    const wrap = h("div", { class: "field", "data-path": path, "data-secret": path }, h("span", { class: "label", id: labelId, text: label }), holder, helpEl, err);
    const draw = (focus: boolean) => {
      clear(holder);
      const edit = f.secrets[path];
      if (edit.kind === "keep" && isSet) {
        const replace = h("button", { type: "button", class: "btn btn-small", text: "Replace", "aria-label": `Replace ${label}`, onclick: () => { f.secrets[path] = { kind: "replace", value: "" }; draw(true); this.refresh(); } });
        holder.append(
          reveal ? this.revealed(label, reveal) : h("span", { class: "secret-set", "data-state": "set", "aria-labelledby": labelId }, icon("check"), "Set"));
        // A value the environment sets wins over Settings: Replace and Remove would change nothing.
        if (!fixed) {
          holder.append(replace,
            h("button", { type: "button", class: "btn btn-small btn-ghost", text: "Remove", "aria-label": `Remove ${label}`, onclick: () => { f.secrets[path] = { kind: "clear" }; draw(true); this.refresh(); } }));
        }
        this.bind(path, replace, err, wrap);
        if (focus) replace.focus();
      } else if (edit.kind === "clear") {
        const undo = h("button", { type: "button", class: "btn btn-small", text: "Undo", onclick: () => { f.secrets[path] = { kind: "keep" }; draw(true); this.refresh(); } });
        holder.append(h("span", { class: "secret-clear", "data-state": "clear" }, icon("trash"), "Will be removed when you save"), undo);
        this.bind(path, undo, err, wrap);
        if (focus) undo.focus();
      } else {
        const input = h("input", {
          type: "password", class: "input mono", autocomplete: "new-password", spellcheck: false, placeholder: isSet ? "Enter the new value" : "Not set",
          "aria-labelledby": labelId, "data-secret-input": path,
        });
        if (helpEl) input.setAttribute("aria-describedby", helpEl.id);
        input.addEventListener("input", () => {
          f.secrets[path] = input.value === "" && !isSet ? { kind: "keep" } : { kind: "replace", value: input.value };
          this.serverErrors.delete(path);
          this.refresh();
        });
        input.addEventListener("blur", () => { this.touched.add(path); this.refresh(); });
        holder.append(input);
        if (isSet) holder.append(h("button", { type: "button", class: "btn btn-small btn-ghost", text: "Cancel", onclick: () => { f.secrets[path] = { kind: "keep" }; this.touched.delete(path); draw(true); this.refresh(); } }));
        this.bind(path, input, err, wrap);
        if (focus) input.focus();
      }
    };
    draw(false);
    return wrap;
  }

  private testConnection(): HTMLElement {
    const result = h("span", { class: "test-result", role: "status", "aria-live": "polite" });
    const btn = h("button", { type: "button", class: "btn", "data-testid": "test-ringcentral" }, icon("pulse"), "Test connection");
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      btn.classList.add("is-busy");
      result.className = "test-result";
      result.textContent = "Testing…";
      try {
        const r = await commands.testRingcentral();
        result.className = `test-result ${r.ok ? "is-ok" : "is-error"}`;
        result.replaceChildren(icon(r.ok ? "check" : "alert"), r.message);
      } catch (e) {
        result.className = "test-result is-error";
        result.replaceChildren(icon("alert"), errorMessage(e));
      } finally {
        btn.disabled = false;
        btn.classList.remove("is-busy");
      }
    });
    const note = h("p", { class: "help test-note", text: "Tests the saved settings; save first to test changes.", hidden: true });
    this.testNote = note;
    return h("div", { class: "field test-row" }, h("div", { class: "control-row" }, btn, result), note);
  }
  private testNote: HTMLElement | null = null;

  private webhookUrl(which: "ringotel"): HTMLElement {
    const out = h("output", { class: "input readonly mono", "data-webhook": which });
    const copy = h("button", { type: "button", class: "btn", "aria-label": "Copy the Ringotel webhook URL" }, icon("copy"), "Copy");
    copy.addEventListener("click", () => {
      const v = health.value?.ringotel_webhook_url;
      if (!v) return;
      copyText(v).then(() => { toast("Webhook URL copied", "success"); copy.replaceChildren(icon("check"), "Copied"); window.setTimeout(() => copy.replaceChildren(icon("copy"), "Copy"), 1600); }, (e) => toastError("Couldn't copy", e));
    });
    const id = nextId("wh");
    out.id = id;
    const field = h("div", { class: "field" }, h("label", { class: "label", for: id, text: "Webhook URL for the Ringotel portal" }), h("div", { class: "control-row" }, out, copy),
      h("p", { class: "help", text: "It changes when the public URL changes." }));
    this.webhookOut = { out, copy };
    this.refreshWebhookUrls();
    return field;
  }
  private webhookOut: { out: HTMLElement; copy: HTMLButtonElement } | null = null;

  private refreshWebhookUrls(): void {
    if (!this.webhookOut) return;
    const v = health.value?.ringotel_webhook_url ?? null;
    this.webhookOut.out.textContent = v ?? "Available once the public URL is online";
    this.webhookOut.out.classList.toggle("is-placeholder", !v);
    this.webhookOut.copy.disabled = !v;
  }

  private tunnelSection(): HTMLElement {
    const f = this.form!;
    const detail = h("div", { class: "tunnel-detail" });
    const drawDetail = () => {
      clear(detail);
      if (f.tunnel.mode === "ngrok") {
        detail.append(
          this.secret("tunnel.ngrok_authtoken", "ngrok authtoken", this.base!.tunnel.ngrok_authtoken_set, "From dashboard.ngrok.com → Your Authtoken."),
          this.text("tunnel.ngrok_domain", "Reserved domain (optional)", f.tunnel.ngrok_domain, (v) => (f.tunnel.ngrok_domain = v), { placeholder: "callpop-dealer.ngrok.app", mono: true, help: "A fixed domain keeps the webhook URL the same across restarts." }),
        );
      } else if (f.tunnel.mode === "provided") {
        detail.append(this.text("tunnel.public_url", "Public URL", f.tunnel.public_url, (v) => (f.tunnel.public_url = v), { placeholder: "https://callpop.example-dealer.com", mono: true, type: "url", help: "An https:// address that forwards to this computer (reverse proxy or your own tunnel)." }));
      } else {
        detail.append(h("p", { class: "help", text: "Webhooks can only reach CallPop from this computer. Ringotel needs a public URL to deliver calls; RingCentral needs one only when it is set to Webhook." }));
      }
    };
    const modes: { v: SettingsForm["tunnel"]["mode"]; t: string; d: string }[] = [
      { v: "ngrok", t: "ngrok tunnel", d: "CallPop opens a secure tunnel" },
      { v: "provided", t: "My own public URL", d: "A proxy you run forwards here" },
      { v: "off", t: "Off", d: "No public address" },
    ];
    const name = nextId("mode");
    const radios = h("div", { class: "choice-cards", role: "radiogroup", "aria-label": "How calls reach CallPop" });
    for (const m of modes) {
      const input = h("input", { type: "radio", name, value: m.v, checked: f.tunnel.mode === m.v, class: "visually-hidden-input" });
      input.addEventListener("change", () => {
        if (!input.checked) return;
        for (const p of ["tunnel.ngrok_authtoken", "tunnel.ngrok_domain", "tunnel.public_url"]) this.bindings.delete(p);
        f.tunnel.mode = m.v;
        this.serverErrors.delete("tunnel.mode");
        drawDetail();
        this.refresh();
      });
      radios.append(h("label", { class: "choice-card" }, input, h("span", { class: "choice-title", text: m.t }), h("span", { class: "choice-desc", text: m.d })));
    }
    const err = this.errorEl("tunnel.mode");
    const wrap = h("div", { class: "field" }, h("span", { class: "label", text: "How calls reach CallPop" }), radios, err);
    this.bind("tunnel.mode", radios, err, wrap);
    drawDetail();
    return this.section("tunnel", "Public URL", "Ringotel (and RingCentral, when set to Webhook) deliver webhooks to a public https:// address that reaches this computer.", wrap, detail);
  }

  private chips(): HTMLElement {
    const f = this.form!;
    const list = h("ul", { class: "chips", "aria-label": "Watched extensions" });
    const input = h("input", { type: "text", class: "chips-input", placeholder: "Add an extension…", inputMode: "numeric", autocomplete: "off", spellcheck: false, "aria-label": "Add a watched extension" });
    const box = h("div", { class: "chips-box" }, list, input);
    box.addEventListener("click", (e) => { if (e.target === box || e.target === list) input.focus(); });
    const err = this.errorEl("watch_extensions");
    const wrap = h("div", { class: "field" }, h("span", { class: "label", text: "Extensions" }), box,
      h("p", { class: "help", text: "Extension numbers (e.g. 101) or extension ids. Press Enter or comma to add." }), err);
    this.bind("watch_extensions", input, err, wrap);
    const draw = () => {
      clear(list);
      f.watch_extensions.forEach((x, i) => {
        list.append(h("li", { class: "chip", "data-index": i, "data-value": x },
          h("span", { class: "mono", text: x }),
          h("button", { type: "button", class: "chip-x", "aria-label": `Remove extension ${x}`, onclick: () => { f.watch_extensions.splice(i, 1); this.dropServerErrors("watch_extensions"); draw(); this.refresh(); input.focus(); } }, icon("x"))));
      });
    };
    const commit = (): boolean => {
      // "Ext 201, x202" is two extensions: the words people put before them go first.
      const parts = input.value.replace(/\b(?:ext(?:ension)?\.?|x)\s*(?=\d)/gi, "").split(/[\s,;]+/).map((s) => normalizeExtension(s)).filter(Boolean);
      if (!parts.length) return true;
      for (const p of parts) {
        const msg = checkExtension(p);
        if (msg) return this.chipError(`“${p}”: ${msg}`), false;
        if (f.watch_extensions.includes(p)) return this.chipError(`${p} is already in the list.`), false;
      }
      f.watch_extensions.push(...parts);
      input.value = "";
      this.chipErrorMsg = null;
      this.dropServerErrors("watch_extensions");
      draw();
      this.refresh();
      return true;
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === "," || e.key === ";") {
        e.preventDefault();
        commit();
      } else if (e.key === "Backspace" && input.value === "" && f.watch_extensions.length) {
        f.watch_extensions.pop();
        draw();
        this.refresh();
      }
    });
    input.addEventListener("input", () => {
      if (this.chipErrorMsg) { this.chipErrorMsg = null; this.refresh(); }
    });
    input.addEventListener("blur", () => { if (input.value.trim()) commit(); });
    draw();
    return wrap;
  }
  private chipErrorMsg: string | null = null;
  private chipError(msg: string): void {
    this.chipErrorMsg = msg;
    this.refresh();
  }

  private dropServerErrors(prefix: string): void {
    for (const k of [...this.serverErrors.keys()]) if (k === prefix || k.startsWith(`${prefix}.`)) this.serverErrors.delete(k);
  }

  private lineLabels(): HTMLElement {
    const f = this.form!;
    const body = h("div", { class: "lines-rows" });
    const err = this.errorEl("line_labels");
    const add = h("button", { type: "button", class: "btn btn-small", onclick: () => { f.line_labels.push({ number: "", label: "" }); this.dropServerErrors("line_labels"); draw(); this.refresh(); body.querySelector<HTMLInputElement>(".line-row:last-child input")?.focus(); } }, icon("plus"), "Add line");
    const table = h("div", { class: "lines", role: "table", "aria-label": "Dealership line labels" },
      h("div", { class: "line-row line-head", role: "row" }, h("span", { role: "columnheader", text: "Number customers dial" }), h("span", { role: "columnheader", text: "Label" }), h("span", { role: "columnheader" }, h("span", { class: "visually-hidden", text: "Remove" }))),
      body);
    const wrap = h("div", { class: "field" }, table, h("div", { class: "lines-foot" }, add), err);
    this.bind("line_labels", add, err, wrap);
    const draw = () => {
      for (const k of [...this.bindings.keys()]) if (k.startsWith("line_labels.")) this.bindings.delete(k);
      clear(body);
      if (!f.line_labels.length) body.append(h("p", { class: "lines-empty muted", text: "No labels yet. Calls show the dialled number instead." }));
      f.line_labels.forEach((l, i) => {
        const mk = (key: "number" | "label", placeholder: string, aria: string) => {
          const path = `line_labels.${i}.${key}`;
          const input = h("input", { type: "text", class: `input${key === "number" ? " mono" : ""}`, value: l[key], placeholder, "aria-label": `${aria}, row ${i + 1}`, spellcheck: false, autocomplete: "off" });
          input.addEventListener("input", () => { l[key] = input.value; this.serverErrors.delete(path); this.refresh(); });
          input.addEventListener("blur", () => { this.touched.add(path); this.refresh(); });
          const e = this.errorEl(path);
          const cell = h("div", { class: "line-cell", role: "cell", "data-path": path }, input, e);
          this.bind(path, input, e, cell);
          return cell;
        };
        body.append(h("div", { class: "line-row", role: "row", "data-index": i },
          mk("number", "+1 415 555 0100", "Number"), mk("label", "Sales", "Label"),
          h("div", { role: "cell" }, h("button", { type: "button", class: "icon-btn", "aria-label": `Remove line ${i + 1}`, title: "Remove", onclick: () => { f.line_labels.splice(i, 1); this.dropServerErrors("line_labels"); for (const k of [...this.touched]) if (k.startsWith("line_labels.")) this.touched.delete(k); draw(); this.refresh(); add.focus(); } }, icon("trash")))));
      });
    };
    draw();
    return wrap;
  }

  /** How RingCentral sends calls: the WebSocket needs no public address; a webhook does. */
  private transportChoice(): HTMLElement {
    const f = this.form!;
    const name = nextId("transport");
    const seg = h("div", { class: "segmented", role: "radiogroup", "aria-label": "How RingCentral sends calls" });
    for (const [v, t] of [["auto", "Automatic"], ["websocket", "WebSocket"], ["webhook", "Webhook"]] as const) {
      const input = h("input", { type: "radio", name, value: v, checked: f.ringcentral.transport === v, class: "visually-hidden-input" });
      input.addEventListener("change", () => { if (input.checked) { f.ringcentral.transport = v; this.refresh(); } });
      seg.append(h("label", { class: "seg" }, input, h("span", { text: t })));
    }
    const err = this.errorEl("ringcentral.transport");
    const field = h("div", { class: "field", "data-path": "ringcentral.transport" }, h("span", { class: "label", text: "How RingCentral sends calls" }), seg,
      h("p", { class: "help", text: "Automatic (recommended): CallPop connects to RingCentral itself, so no public address or ngrok is needed; it uses a webhook only if the app lacks the “WebSocket Subscriptions” permission. WebSocket: always connect. Webhook: RingCentral sends calls to the public address below." }), err);
    this.bind("ringcentral.transport", seg, err, field);
    return field;
  }

  private popupsSection(): HTMLElement {
    const f = this.form!;
    const p = f.popups;
    const name = nextId("notif");
    const seg = h("div", { class: "segmented", role: "radiogroup", "aria-label": "Popups" });
    for (const [v, t] of [["auto", "Auto"], ["on", "Always"], ["off", "Off"]] as const) {
      const input = h("input", { type: "radio", name, value: v, checked: p.notifications === v, class: "visually-hidden-input" });
      input.addEventListener("change", () => { if (input.checked) { p.notifications = v; this.refresh(); } });
      seg.append(h("label", { class: "seg" }, input, h("span", { text: t })));
    }
    const segErr = this.errorEl("popups.notifications");
    const segField = h("div", { class: "field" }, h("span", { class: "label", text: "Show popups" }), seg,
      h("p", { class: "help", text: "Auto (recommended): popups whenever this computer can show them. Always: the same, but Health turns red when it cannot, for a desk that must never miss a popup silently. Off: no popups; calls are still saved." }), segErr);
    this.bind("popups.notifications", seg, segErr, segField);

    const quiet = h("div", { class: "quiet-times" },
      this.text("popups.quiet_hours.start", "From", p.quiet_start, (v) => (p.quiet_start = v), { placeholder: "22:00", width: "tiny", mono: true, inputMode: "numeric" }),
      this.text("popups.quiet_hours.end", "Until", p.quiet_end, (v) => (p.quiet_end = v), { placeholder: "07:00", width: "tiny", mono: true, inputMode: "numeric" }));
    quiet.hidden = !p.quiet_enabled;
    const quietToggle = this.switch("Quiet hours", p.quiet_enabled, (on) => { p.quiet_enabled = on; quiet.hidden = !on; this.refresh(); }, "No popups during these hours (24-hour HH:MM). Calls are still logged.");

    const crmPreview = h("p", { class: "help crm-preview mono" });
    const crm = this.text("popups.crm_url_template", "CRM link", p.crm_url_template, (v) => { p.crm_url_template = v; drawPreview(); }, { placeholder: "https://crm.example.com/customers?phone={e164}", mono: true, type: "url" });
    const crmInput = crm.querySelector("input")!;
    const chips = h("div", { class: "placeholder-chips" }, h("span", { class: "help", text: "Insert:" }));
    for (const ph of CRM_PLACEHOLDERS) {
      chips.append(h("button", { type: "button", class: "token", text: ph, onclick: () => {
        const s = crmInput.selectionStart ?? crmInput.value.length;
        const e = crmInput.selectionEnd ?? s;
        crmInput.setRangeText(ph, s, e, "end");
        crmInput.dispatchEvent(new Event("input"));
        crmInput.focus();
      } }));
    }
    const crmWarning = h("p", { class: "help crm-warning", "data-testid": "crm-warning" });
    const drawPreview = () => {
      const t = p.crm_url_template.trim();
      crmPreview.hidden = !t;
      crmPreview.textContent = t ? `Example: ${fillCrmTemplate(t, { number: "4155550123", e164: "+14155550123", name: "Jane Doe", call_id: "RC-session-id" })}` : "";
      const warning = crmTemplateWarning(t);
      crmWarning.hidden = !warning;
      crmWarning.textContent = warning ?? "";
    };
    drawPreview();
    crm.insertBefore(chips, crm.querySelector(".field-error"));
    crm.insertBefore(crmPreview, crm.querySelector(".field-error"));
    crm.insertBefore(crmWarning, crm.querySelector(".field-error"));

    return this.section("popups", "Popups", "What appears on screen when a customer calls.",
      segField,
      quietToggle, quiet,
      h("div", { class: "field-pair" },
        this.text("popups.max_on_screen", "Most popups on screen", p.max_on_screen, (v) => (p.max_on_screen = v), { width: "tiny", inputMode: "numeric", help: `${LIMITS.maxOnScreen.min}–${LIMITS.maxOnScreen.max}. Older ones fold into a summary.` }),
        this.text("popups.answered_close_seconds", "Close answered popups after", p.answered_close_seconds, (v) => (p.answered_close_seconds = v), { width: "tiny", inputMode: "numeric", help: `Seconds, ${LIMITS.answeredClose.min}–${LIMITS.answeredClose.max}. 0 closes at once.` })),
      crm,
    );
  }

  private switch(label: string, on: boolean, set: (on: boolean) => void, help?: string, path?: string): HTMLElement {
    const id = nextId("sw");
    const input = h("input", { type: "checkbox", id, role: "switch", class: "switch-input", checked: on });
    input.addEventListener("change", () => set(input.checked));
    const helpEl = help ? h("p", { class: "help", id: nextId("help"), text: help }) : null;
    if (helpEl) input.setAttribute("aria-describedby", helpEl.id);
    const err = this.errorEl(path ?? id);
    const wrap = h("div", { class: "field field-switch" },
      h("label", { class: "switch", for: id }, input, h("span", { class: "switch-track", "aria-hidden": "true" }, h("span", { class: "switch-thumb" })), h("span", { class: "switch-label", text: label })),
      helpEl, err);
    if (path) this.bind(path, input, err, wrap);
    return wrap;
  }

  private generalSection(): HTMLElement {
    const f = this.form!;
    const g = f.general;
    const closeName = nextId("close");
    const closeGroup = h("div", { class: "segmented", role: "radiogroup", "aria-label": "Close button" });
    for (const [v, t] of [[true, "Hides to the tray"], [false, "Quits CallPop"]] as const) {
      const input = h("input", { type: "radio", name: closeName, value: String(v), checked: g.close_to_tray === v, class: "visually-hidden-input" });
      input.addEventListener("change", () => { if (input.checked) { g.close_to_tray = v; this.refresh(); } });
      closeGroup.append(h("label", { class: "seg" }, input, h("span", { text: t })));
    }
    const closeErr = this.errorEl("general.close_to_tray");
    const closeField = h("div", { class: "field" }, h("span", { class: "label", text: "The window's close button" }), closeGroup,
      h("p", { class: "help", text: "When hidden, CallPop keeps watching calls from the tray." }), closeErr);
    this.bind("general.close_to_tray", closeGroup, closeErr, closeField);

    const country = h("select", { class: "select" });
    for (const c of COUNTRIES) country.append(h("option", { value: c.code, text: c.name, selected: c.code === g.default_country }));
    if (!COUNTRIES.some((c) => c.code === g.default_country)) country.append(h("option", { value: g.default_country, text: g.default_country, selected: true }));
    country.addEventListener("change", () => { g.default_country = country.value; this.serverErrors.delete("general.default_country"); this.refresh(); });
    const countryField = this.fieldShell("general.default_country", "Default country", h("div", { class: "select-wrap" }, country, icon("chevron", "icon select-chev")), "Used to read numbers sent without a country code.");
    // fieldShell labels the wrapper; point the label (and the help text) at the select itself.
    const wrapper = country.parentElement!;
    country.id = nextId("country");
    country.setAttribute("aria-describedby", wrapper.getAttribute("aria-describedby") ?? "");
    wrapper.removeAttribute("aria-describedby");
    wrapper.removeAttribute("id");
    countryField.querySelector("label")!.htmlFor = country.id;
    this.bind("general.default_country", country, this.bindings.get("general.default_country")!.error, countryField);

    const dataDir = h("output", { class: "input readonly mono", text: this.base!.general.data_dir, "data-testid": "data-dir" });
    const dirId = nextId("dir");
    dataDir.id = dirId;
    const copyDir = h("button", { type: "button", class: "btn", "aria-label": "Copy the data folder path", onclick: () => copyText(this.base!.general.data_dir).then(() => toast("Path copied", "success"), (e) => toastError("Couldn't copy", e)) }, icon("copy"), "Copy");

    return this.section("general", "General", "How CallPop starts and where it keeps its data.",
      this.switch("Start CallPop when I sign in", g.autostart, (on) => { g.autostart = on; this.refresh(); }, undefined, "general.autostart"),
      closeField,
      countryField,
      h("div", { class: "field" }, h("label", { class: "label", for: dirId, text: "Data folder" }), h("div", { class: "control-row" }, dataDir, copyDir),
        h("p", { class: "help", text: "The call history database and logs. Back up this folder to keep your history." })),
    );
  }

  // ------------------------------------------------------------------------------------------
  // Validation state and saving

  private clientErrors(): FieldError[] {
    if (!this.form || !this.base) return [];
    const set: Record<SecretField, boolean> = {
      "ringcentral.client_secret": this.base.ringcentral.client_secret_set,
      "ringcentral.jwt": this.base.ringcentral.jwt_set,
      "ringotel.api_token": this.base.ringotel.api_token_set,
      "tunnel.ngrok_authtoken": this.base.tunnel.ngrok_authtoken_set,
    };
    return validateForm(this.form, set);
  }

  /** Resolves an error path to the nearest bound field ("watch_extensions.3" → "watch_extensions"). */
  private bindingFor(path: string): string | null {
    let p = path;
    for (;;) {
      if (this.bindings.has(p)) return p;
      const dot = p.lastIndexOf(".");
      if (dot < 0) return null;
      p = p.slice(0, dot);
    }
  }

  private refresh(): void {
    if (!this.form) return;
    const client = this.clientErrors();
    const shown = new Map<string, string[]>();
    const unplaced: string[] = [];
    const push = (path: string, msg: string) => {
      const b = this.bindingFor(path);
      if (!b) { unplaced.push(msg); return; }
      const list = shown.get(b) ?? [];
      if (!list.includes(msg)) list.push(msg);
      shown.set(b, list);
    };
    for (const [path, msg] of this.serverErrors) push(path, msg);
    for (const e of client) {
      const b = this.bindingFor(e.field);
      const always = e.field.startsWith("watch_extensions") || e.field.startsWith("tunnel.ngrok_authtoken") && this.submitted;
      if (this.submitted || always || this.isTouched(e.field, b)) push(e.field, e.message);
    }
    if (this.chipErrorMsg) push("watch_extensions", this.chipErrorMsg);
    for (const [path, b] of this.bindings) {
      const msgs = shown.get(path);
      b.error.hidden = !msgs;
      b.error.textContent = msgs ? msgs.join(" ") : "";
      if (msgs) b.control.setAttribute("aria-invalid", "true");
      else b.control.removeAttribute("aria-invalid");
      b.row?.classList.toggle("has-error", Boolean(msgs));
    }
    // Chips flagged by index.
    for (const chip of this.content.querySelectorAll<HTMLElement>(".chip")) {
      const i = chip.dataset.index;
      const bad = this.serverErrors.has(`watch_extensions.${i}`) || client.some((e) => e.field === `watch_extensions.${i}`);
      chip.classList.toggle("is-invalid", bad);
    }
    if (unplaced.length) {
      this.summary.hidden = false;
      this.summary.replaceChildren(icon("alert"), h("div", null, h("strong", { text: "Couldn't save" }), h("ul", null, ...unplaced.map((m) => h("li", { text: m })))));
    } else {
      this.summary.hidden = true;
    }
    // Section nav: flag sections with errors.
    for (const [id, btn] of this.navButtons) {
      const sec = this.content.querySelector(`[data-section="${id}"]`);
      btn.classList.toggle("has-error", Boolean(sec?.querySelector(".field-error:not([hidden])")));
    }
    const dirty = this.dirty;
    this.saveBtn.disabled = !dirty || this.saving;
    this.discardBtn.disabled = !dirty || this.saving;
    this.bar.classList.toggle("is-dirty", dirty);
    if (this.testNote) {
      const rcDirty = this.base !== null && (this.form.ringcentral.server !== this.base.ringcentral.server || this.form.ringcentral.client_id !== this.base.ringcentral.client_id || this.form.secrets["ringcentral.client_secret"].kind !== "keep" || this.form.secrets["ringcentral.jwt"].kind !== "keep");
      this.testNote.hidden = !rcDirty;
    }
    const key = formKey(this.form);
    if (this.statusMsg && this.statusMsg.key !== key) this.statusMsg = null;
    if (this.statusMsg) {
      this.statusEl.replaceChildren(...(this.statusMsg.ok ? [icon("check")] : []), this.statusMsg.text);
    } else if (dirty) {
      this.statusEl.replaceChildren(h("span", { class: "dirty-dot", "aria-hidden": "true" }), "Unsaved changes");
    } else {
      this.statusEl.textContent = "";
    }
    if (dirty !== this.lastDirty) {
      this.lastDirty = dirty;
      this.onDirtyChange(dirty);
    }
  }

  private status(text: string, ok = false): void {
    this.statusMsg = this.form ? { text, ok, key: formKey(this.form) } : null;
    this.refresh();
  }

  private isTouched(path: string, binding: string | null): boolean {
    if (this.touched.has(path) || (binding !== null && this.touched.has(binding))) return true;
    // Fields validated together (quiet hours start/end) show their errors once either was touched.
    if (path.startsWith("popups.quiet_hours.")) return [...this.touched].some((t) => t.startsWith("popups.quiet_hours."));
    return false;
  }

  private focusFirstError(): void {
    const err = this.content.querySelector<HTMLElement>(".field-error:not([hidden])");
    if (!err) {
      if (!this.summary.hidden) this.summary.scrollIntoView({ block: "nearest" });
      return;
    }
    const path = err.dataset.field ?? "";
    const b = this.bindings.get(path);
    (b?.row ?? err).scrollIntoView({ block: "center" });
    const c = b?.control;
    if (c) (c.matches("input, select, button, textarea") ? c : c.querySelector<HTMLElement>("input, select, button")) ?.focus({ preventScroll: true });
  }

  async save(): Promise<void> {
    if (!this.form || !this.dirty || this.saving) return;
    this.submitted = true;
    if (this.chipsPending()) return;
    const errors = this.clientErrors();
    this.refresh();
    if (errors.length) {
      this.status(`${errors.length === 1 ? "1 field needs" : `${errors.length} fields need`} attention`);
      this.focusFirstError();
      return;
    }
    this.saving = true;
    this.saveBtn.classList.add("is-busy");
    this.refresh();
    const update = updateFromForm(this.form);
    try {
      let r = await commands.saveSettings(update);
      if (!r.ok && "confirmations" in r) {
        const yes = await confirmChanges("Confirm these changes", r.confirmations.map((c) => c.question), "Save and apply");
        if (!yes) {
          this.status("Not saved");
          return;
        }
        r = await commands.saveSettings({ ...update, confirmed: true });
      }
      if (r.ok) {
        this.setBase(r.settings);
        this.status("Saved", true);
        toast("Settings saved", "success");
      } else if ("errors" in r) {
        this.serverErrors.clear();
        for (const e of r.errors) this.serverErrors.set(e.field, e.message);
        this.status("Not saved: fix the highlighted fields");
        this.refresh();
        this.focusFirstError();
      }
    } catch (e) {
      toastError("Couldn't save settings", e);
      this.status("Not saved");
    } finally {
      this.saving = false;
      this.saveBtn.classList.remove("is-busy");
      this.refresh();
    }
  }

  /** "Start CallPop when I sign in" from the hint on the call log: saved at once when nothing
   * else is being edited; otherwise switched on in the form, which is shown for saving. */
  async turnOnAutostart(): Promise<"saved" | "in_form" | "failed"> {
    if (!this.base || !this.form) return "failed";
    if (this.dirty) {
      this.form.general.autostart = true;
      this.render();
      this.show("general");
      return "in_form";
    }
    const form = formFromSettings(this.base);
    form.general.autostart = true;
    try {
      const r = await commands.saveSettings(updateFromForm(form));
      if (!r.ok) throw "errors" in r ? r.errors.map((e) => e.message).join("; ") : "the change needs confirming in Settings";
      this.setBase(r.settings);
      return "saved";
    } catch (e) {
      toastError("Couldn't turn on starting at sign-in", e);
      return "failed";
    }
  }

  /** An extension typed but not yet added counts as an error on save. */
  private chipsPending(): boolean {
    const input = this.content.querySelector<HTMLInputElement>(".chips-input");
    if (!input?.value.trim()) return false;
    input.dispatchEvent(new Event("blur"));
    if (this.chipErrorMsg) {
      this.focusFirstError();
      return true;
    }
    return false;
  }
}

