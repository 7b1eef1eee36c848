// The call log: search, filters, a virtualized keyset-paged list with live updates, and the
// detail panel.
import { type CallResult, type CallView, type CallDirection } from "../bindings";
import { h, icon, setIcon, setText, nextId } from "../dom";
import { formatCallTime, formatCount, formatDateTime, fromDateInput, startOfLocalDay, toDateInput } from "../format";
import { CallFeed, hasFilters, type FeedChange, type FeedQuery } from "../call-feed";
import { VirtualList } from "../virtual-list";
import { directionIcon, durationText, extensionText, isLive, lineText, primaryText, resultBadge, secondaryText, DIRECTION_LABEL } from "../call-display";
import { DetailPanel } from "./detail";
import { showExportDialog } from "../export-dialog";
import { toast, toastError } from "../toast";
import { health, settings as settingsState } from "../state";

const AUTOSTART_HINT_DISMISSED = "callpop.autostart-hint-dismissed";


const ROW_HEIGHT = 56;
const SEARCH_DEBOUNCE_MS = 120;

type Range = "all" | "today" | "7d" | "30d" | "custom";
type Filters = { search: string; result: "" | CallResult; direction: "" | CallDirection; extension: string; range: Range; since: string; until: string };

const EMPTY_FILTERS: Filters = { search: "", result: "", direction: "", extension: "", range: "all", since: "", until: "" };

type RowRefs = {
  dir: SVGSVGElement; dirCell: HTMLElement; name: HTMLElement; number: HTMLElement; line: HTMLElement;
  ext: HTMLElement; extMain: HTMLElement; extSub: HTMLElement; badge: HTMLElement; badgeText: HTMLElement; time: HTMLElement; dur: HTMLElement;
  call: CallView | null; key: string;
};

export class LogView {
  readonly el: HTMLElement;
  readonly feed = new CallFeed();
  private filters: Filters = { ...EMPTY_FILTERS };
  private list!: VirtualList;
  private viewport!: HTMLElement;
  private refs = new WeakMap<HTMLElement, RowRefs>();
  private countEl!: HTMLElement;
  private searchInput!: HTMLInputElement;
  private clearSearchBtn!: HTMLButtonElement;
  private extInput!: HTMLInputElement;
  private resultSel!: HTMLSelectElement;
  private dirSel!: HTMLSelectElement;
  private rangeSel!: HTMLSelectElement;
  private customBox!: HTMLElement;
  private sinceInput!: HTMLInputElement;
  private untilInput!: HTMLInputElement;
  private rangeError!: HTMLElement;
  private clearFiltersBtn!: HTMLButtonElement;
  private exportBtn!: HTMLButtonElement;
  private footer!: HTMLElement;
  private emptyEl!: HTMLElement;
  private hintEl!: HTMLElement;
  /** Turns on "Start CallPop when I sign in" (the settings page does the saving). */
  onAutostart: () => Promise<"saved" | "in_form" | "failed"> = async () => "failed";
  private newPill!: HTMLButtonElement;
  private listWrap!: HTMLElement;
  private detail = new DetailPanel();
  private activeId: number | null = null;
  private newIds = new Map<number, number>();
  private pendingNew = 0;
  private debounce = 0;
  private detailFollow = 0;
  private rowIdPrefix = nextId("call");
  private lastMinute = Math.floor(Date.now() / 60_000);
  private lastNextError: string | null = null;

  constructor() {
    this.el = h("section", { class: "view view-log", "aria-label": "Call log" });
    this.build();
    this.feed.onChange((c) => this.onFeed(c));
    this.detail.onClose = () => {
      this.el.classList.remove("has-detail");
      this.list.refresh();
      this.viewport.focus({ preventScroll: true });
    };
    window.setInterval(() => this.tick(), 1000);
    // The empty log says what is missing; it changes with the engine's status.
    health.subscribe(() => this.updateChrome(), false);
    settingsState.subscribe((s) => this.updateHint(s?.general.autostart ?? true));
  }

  /** Until CallPop starts at sign-in (or the hint is dismissed), the log says what is at stake:
   * after a restart nothing pops up until somebody remembers to open CallPop. */
  private updateHint(autostart: boolean): void {
    let dismissed = false;
    try {
      dismissed = localStorage.getItem(AUTOSTART_HINT_DISMISSED) === "1";
    } catch {
      // Storage off: the hint can still be closed for this session.
    }
    this.hintEl.hidden = autostart || dismissed;
    if (this.hintEl.hidden || this.hintEl.childElementCount) return;
    const on: HTMLButtonElement = h("button", { type: "button", class: "btn btn-small btn-primary", text: "Start when I sign in", onclick: async () => {
      on.disabled = true;
      const r = await this.onAutostart();
      on.disabled = false;
      if (r === "saved") toast("CallPop will start when you sign in", "success");
    } });
    const close = h("button", { type: "button", class: "icon-btn", "aria-label": "Don't show this again", onclick: () => {
      try {
        localStorage.setItem(AUTOSTART_HINT_DISMISSED, "1");
      } catch {
        // Hidden for this session only.
      }
      this.hintEl.hidden = true;
    } }, icon("x"));
    this.hintEl.append(icon("info", "icon hint-icon"),
      h("span", { class: "hint-text", text: "CallPop does not start when you sign in: after a restart, calls pop up only once someone opens it." }),
      on, close);
  }

  // ------------------------------------------------------------------------------------------
  // Building

  private build(): void {
    const searchId = nextId("search");
    this.searchInput = h("input", {
      id: searchId, type: "search", class: "search-input", placeholder: "Search number, name or extension", autocomplete: "off", spellcheck: false,
      "aria-label": "Search calls", "aria-keyshortcuts": "Control+F /", "data-testid": "search",
      oninput: () => this.onFilterInput(),
      onkeydown: (e: Event) => {
        const ke = e as KeyboardEvent;
        if (ke.key === "Enter") this.applyNow();
        else if (ke.key === "Escape" && this.searchInput.value) {
          ke.stopPropagation();
          this.searchInput.value = "";
          this.applyNow();
        } else if (ke.key === "ArrowDown") {
          ke.preventDefault();
          this.viewport.focus();
          if (this.activeId === null) this.moveActive(0);
        }
      },
    });
    this.clearSearchBtn = h("button", {
      type: "button", class: "icon-btn search-clear", "aria-label": "Clear search", hidden: true,
      onclick: () => { this.searchInput.value = ""; this.applyNow(); this.searchInput.focus(); },
    }, icon("x"));
    const search = h("div", { class: "search" }, icon("search", "icon search-icon"), this.searchInput, this.clearSearchBtn);

    this.resultSel = select("Result", [["", "Any result"], ["answered", "Answered"], ["missed", "Missed"], ["voicemail", "Voicemail"], ["no_answer", "No answer"], ["no_end_reported", "No end reported"]], () => this.applyNow());
    this.dirSel = select("Direction", [["", "Any direction"], ["inbound", "Inbound"], ["outbound", "Outbound"], ["internal", "Internal"]], () => this.applyNow());
    this.rangeSel = select("Date range", [["all", "Any time"], ["today", "Today"], ["7d", "Last 7 days"], ["30d", "Last 30 days"], ["custom", "Custom range…"]], () => this.onRangeChange());
    this.extInput = h("input", { type: "text", class: "input ext-input", placeholder: "Extension", inputMode: "numeric", autocomplete: "off", spellcheck: false, "aria-label": "Extension", oninput: () => this.onFilterInput(), onkeydown: (e: Event) => { if ((e as KeyboardEvent).key === "Enter") this.applyNow(); } });

    this.sinceInput = h("input", { type: "date", class: "input date-input", "aria-label": "From date", onchange: () => this.applyNow() });
    this.untilInput = h("input", { type: "date", class: "input date-input", "aria-label": "To date", onchange: () => this.applyNow() });
    this.rangeError = h("span", { class: "field-error inline", role: "alert", hidden: true });
    this.customBox = h("div", { class: "custom-range", hidden: true }, this.sinceInput, h("span", { class: "range-sep", text: "to", "aria-hidden": "true" }), this.untilInput, this.rangeError);

    this.exportBtn = h("button", { type: "button", class: "btn", title: "Export the calls matching the current filters for a spreadsheet (CSV)", "aria-label": "Export CSV", "data-testid": "export", onclick: () => void this.exportCsv() }, icon("download"), h("span", { class: "export-label", text: "Export CSV" }));

    const toolbar = h("div", { class: "toolbar log-toolbar", role: "search" },
      search,
      h("div", { class: "filters", role: "group", "aria-label": "Filters" }, this.resultSel.parentElement!, this.dirSel.parentElement!, this.extInput, this.rangeSel.parentElement!),
      this.exportBtn);

    this.countEl = h("span", { class: "result-count", role: "status", "aria-live": "polite", "data-testid": "result-count" });
    this.clearFiltersBtn = h("button", { type: "button", class: "link-btn", text: "Clear filters", hidden: true, onclick: () => this.clearFilters() });
    const subbar = h("div", { class: "subbar" }, this.countEl, this.customBox, h("span", { class: "grow" }), this.clearFiltersBtn);

    const header = h("div", { class: "list-header", "aria-hidden": "true" },
      h("span", { class: "c-dir" }), h("span", { class: "c-who", text: "Caller" }), h("span", { class: "c-line", text: "Line" }),
      h("span", { class: "c-ext", text: "Extension" }), h("span", { class: "c-result", text: "Result" }), h("span", { class: "c-when", text: "Time" }));

    this.viewport = h("div", {
      class: "list-viewport", role: "listbox", tabindex: 0, "aria-label": "Calls, newest first", "data-testid": "call-list",
      onkeydown: (e: Event) => this.onListKey(e as KeyboardEvent),
    });
    this.footer = h("div", { class: "list-footer" });
    this.list = new VirtualList({
      viewport: this.viewport, rowHeight: ROW_HEIGHT, overscan: 8, footer: this.footer,
      createRow: () => this.createRow(),
      renderRow: (el, i) => this.renderRow(el, i),
      releaseRow: (el) => {
        const r = this.refs.get(el);
        if (r) {
          r.key = "";
          r.call = null;
        }
        el.removeAttribute("id");
        delete el.dataset.callId;
      },
      onRender: (first, last) => this.onRender(first, last),
    });
    this.viewport.addEventListener("focus", () => {
      // Tabbing into the list selects the first row in view (a mouse click selects its own row).
      if (this.activeId !== null || !this.viewport.matches(":focus-visible")) return;
      const [first] = this.list.visibleRange();
      const c = this.feed.get(first);
      if (c) this.select(c.id);
    });
    this.viewport.addEventListener("click", (e) => {
      const row = (e.target as HTMLElement).closest<HTMLElement>(".row");
      const call = row ? this.refs.get(row)?.call : null;
      if (call) this.select(call.id, { open: true });
    });

    this.newPill = h("button", { type: "button", class: "new-pill", hidden: true, onclick: () => { this.viewport.scrollTop = 0; this.hidePill(); } }, icon("inbound"), h("span"));
    this.emptyEl = h("div", { class: "empty list-empty", hidden: true });
    this.listWrap = h("div", { class: "list-wrap" }, header, this.viewport, this.newPill, this.emptyEl);
    const body = h("div", { class: "log-body" }, this.listWrap, this.detail.el);
    this.hintEl = h("div", { class: "hint-bar", role: "note", hidden: true, "data-testid": "autostart-hint" });
    this.el.append(toolbar, this.hintEl, subbar, body);
    this.viewport.addEventListener("scroll", () => { if (this.viewport.scrollTop < ROW_HEIGHT / 2) this.hidePill(); }, { passive: true });
  }

  private createRow(): HTMLElement {
    const dir = icon("inbound", "icon");
    const dirCell = h("span", { class: "c-dir" }, dir);
    const name = h("span", { class: "who-name", dir: "auto" });
    const number = h("span", { class: "who-number", dir: "auto" });
    const line = h("span", { class: "pill" });
    const extMain = h("span", { class: "ext-main", dir: "auto" });
    const extSub = h("span", { class: "ext-sub" });
    const ext = h("span", { class: "c-ext" }, extMain, extSub);
    const badgeText = h("span");
    const badge = h("span", { class: "badge" }, h("span", { class: "badge-dot" }), badgeText);
    const time = h("span", { class: "when-time" });
    const dur = h("span", { class: "when-dur" });
    const el = h("div", { class: "row", role: "option", "aria-selected": "false" },
      dirCell, h("span", { class: "c-who" }, name, number), h("span", { class: "c-line" }, line), ext,
      h("span", { class: "c-result" }, badge), h("span", { class: "c-when" }, time, dur));
    this.refs.set(el, { dir, dirCell, name, number, line, ext, extMain, extSub, badge, badgeText, time, dur, call: null, key: "" });
    return el;
  }

  private renderRow(el: HTMLElement, i: number): void {
    const r = this.refs.get(el)!;
    const c = this.feed.get(i);
    el.setAttribute("aria-posinset", String(i + 1));
    el.setAttribute("aria-setsize", String(this.feed.total ?? -1));
    if (!c) {
      if (r.key !== "skeleton") {
        r.key = "skeleton";
        r.call = null;
        el.className = "row row-skeleton";
        el.removeAttribute("id");
        delete el.dataset.callId;
        el.removeAttribute("aria-label");
        el.setAttribute("aria-selected", "false");
        for (const x of [r.name, r.number, r.extMain, r.extSub, r.time, r.dur, r.badgeText, r.line]) x.textContent = "";
      }
      return;
    }
    const active = c.id === this.activeId;
    const open = this.detail.isOpen && this.detail.currentId === c.id;
    const isNew = this.newIds.has(c.id);
    const key = `${c.id}|${c.updated_at}|${c.state}|${c.result}|${active}|${open}|${isNew}`;
    if (r.key === key) return;
    r.key = key;
    r.call = c;
    const badge = resultBadge(c);
    el.id = `${this.rowIdPrefix}-${c.id}`;
    el.dataset.callId = String(c.id);
    el.className = `row${c.result === "missed" ? " is-missed" : ""}${isLive(c) ? " is-live" : ""}${c.state === "connected" ? " is-connected" : ""}${active ? " is-active" : ""}${open ? " is-open" : ""}${isNew ? " is-new" : ""}`;
    el.setAttribute("aria-selected", active ? "true" : "false");
    setIcon(r.dir, directionIcon(c));
    r.dirCell.className = `c-dir dir-${c.direction} tone-${badge.tone}`;
    r.dirCell.title = DIRECTION_LABEL[c.direction];
    setText(r.name, primaryText(c));
    setText(r.number, secondaryText(c));
    const line = lineText(c);
    setText(r.line, line.text);
    r.line.className = line.isLabel ? "pill" : "line-number";
    r.line.hidden = !line.text;
    const ext = extensionText(c);
    setText(r.extMain, ext.main);
    setText(r.extSub, ext.sub);
    r.ext.title = ext.title;
    r.badge.className = `badge tone-${badge.tone}`;
    setText(r.badgeText, badge.text);
    setText(r.time, formatCallTime(c.started_at));
    r.time.title = formatDateTime(c.started_at);
    setText(r.dur, durationText(c));
    el.setAttribute("aria-label", `${primaryText(c)}, ${secondaryText(c)}${line.isLabel ? `, ${line.text} line` : line.text ? `, line ${line.text}` : ""}, ${badge.text}, ${formatCallTime(c.started_at)}, ${DIRECTION_LABEL[c.direction]}`);
  }

  // ------------------------------------------------------------------------------------------
  // Data

  start(): void {
    void this.runQuery();
  }

  private query(): FeedQuery | null {
    const f = this.filters;
    const q: FeedQuery = {};
    if (f.search.trim()) q.search = f.search.trim();
    if (f.result) q.result = f.result;
    if (f.direction) q.direction = f.direction;
    if (f.extension.trim()) q.extension = f.extension.trim();
    const now = new Date();
    const day = startOfLocalDay(now);
    const daysBack = (n: number) => new Date(day.getFullYear(), day.getMonth(), day.getDate() - n).toISOString();
    if (f.range === "today") q.since = day.toISOString();
    else if (f.range === "7d") q.since = daysBack(6);
    else if (f.range === "30d") q.since = daysBack(29);
    else if (f.range === "custom") {
      const s = fromDateInput(f.since);
      const u = fromDateInput(f.until);
      if (s && u && s > u) return null;
      if (s) q.since = s.toISOString();
      if (u) q.until = new Date(u.getFullYear(), u.getMonth(), u.getDate() + 1).toISOString();
    }
    return q;
  }

  private readFilters(): void {
    this.filters = {
      search: this.searchInput.value,
      result: this.resultSel.value as Filters["result"],
      direction: this.dirSel.value as Filters["direction"],
      extension: this.extInput.value,
      range: this.rangeSel.value as Range,
      since: this.sinceInput.value,
      until: this.untilInput.value,
    };
    this.clearSearchBtn.hidden = !this.searchInput.value;
    for (const sel of [this.resultSel, this.dirSel]) sel.parentElement!.classList.toggle("is-active", sel.value !== "");
    this.rangeSel.parentElement!.classList.toggle("is-active", this.rangeSel.value !== "all");
    this.extInput.classList.toggle("is-active", this.extInput.value.trim() !== "");
    const any = JSON.stringify({ ...this.filters, search: this.filters.search.trim(), extension: this.filters.extension.trim() }) !== JSON.stringify(EMPTY_FILTERS);
    this.clearFiltersBtn.hidden = !any;
  }

  private onFilterInput(): void {
    this.readFilters();
    window.clearTimeout(this.debounce);
    this.debounce = window.setTimeout(() => void this.runQuery(), SEARCH_DEBOUNCE_MS);
  }

  private applyNow(): void {
    window.clearTimeout(this.debounce);
    this.readFilters();
    void this.runQuery();
  }

  private onRangeChange(): void {
    const custom = this.rangeSel.value === "custom";
    this.customBox.hidden = !custom;
    if (custom && !this.sinceInput.value) {
      const now = new Date();
      this.sinceInput.value = toDateInput(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 6));
      this.untilInput.value = toDateInput(now);
      this.sinceInput.focus();
    }
    this.applyNow();
  }

  private clearFilters(): void {
    this.searchInput.value = "";
    this.resultSel.value = "";
    this.dirSel.value = "";
    this.extInput.value = "";
    this.rangeSel.value = "all";
    this.customBox.hidden = true;
    this.applyNow();
    this.searchInput.focus();
  }

  private lastQueryKey = "";

  private async runQuery(force = false): Promise<void> {
    const q = this.query();
    this.rangeError.hidden = q !== null;
    if (!q) {
      this.rangeError.textContent = "The start date is after the end date.";
      return;
    }
    const key = JSON.stringify(q);
    if (!force && key === this.lastQueryKey && this.feed.status === "ready") return;
    this.lastQueryKey = key;
    this.listWrap.setAttribute("aria-busy", "true");
    try {
      await this.feed.setQuery(q);
    } catch (e) {
      toastError("Couldn't load calls", e);
    }
  }

  /** Re-runs the current query (relative date ranges move with the clock). */
  reload(): void {
    void this.runQuery(true);
  }

  private onFeed(c: FeedChange): void {
    switch (c.kind) {
      case "reset":
        this.listWrap.removeAttribute("aria-busy");
        this.hidePill();
        this.newIds.clear();
        this.list.setCount(this.feed.length);
        this.list.reset(0);
        if (this.activeId !== null && this.feed.indexOf(this.activeId) < 0) this.activeId = null;
        this.list.refresh();
        break;
      case "append":
      case "reshape":
        this.list.setCount(this.feed.length);
        this.list.refresh();
        break;
      case "update":
        this.list.refresh();
        for (const id of c.ids) this.detail.callChanged(id);
        break;
      case "insert": {
        const now = Date.now();
        for (const id of c.ids) this.newIds.set(id, now);
        let above = 0;
        for (const at of c.positions) if (this.list.insertAt(at, 1).shifted) above += 1;
        if (above) this.showPill(above);
        this.list.refresh();
        break;
      }
      case "status":
        if (this.feed.status === "error") this.listWrap.removeAttribute("aria-busy");
        if (this.feed.nextError && this.feed.nextError !== this.lastNextError) toast("Couldn't load more calls", "error", { detail: this.feed.nextError });
        this.lastNextError = this.feed.nextError;
        break;
    }
    this.updateChrome();
  }

  private updateChrome(): void {
    const f = this.feed;
    const n = f.length;
    let text: string;
    if (f.status === "loading" && n === 0) text = "Loading calls…";
    else if (f.status === "error" && n === 0) text = "Calls unavailable";
    else if (f.total !== null) text = `${formatCount(f.total)} ${f.total === 1 ? "call" : "calls"}`;
    else if (f.totalAtLeast !== null) text = `${formatCount(f.totalAtLeast)}+ calls`;
    else text = f.done ? `${formatCount(n)} ${n === 1 ? "call" : "calls"}` : `${formatCount(n)}+ calls`;
    if (f.query.search && f.status !== "loading") text += ` matching “${f.query.search}”`;
    setText(this.countEl, text);
    this.countEl.classList.toggle("is-loading", f.status === "loading");

    // Footer line below the last row.
    let footer = "";
    let footerKind = "";
    if (n > 0) {
      if (f.nextError) { footer = "Couldn't load more calls."; footerKind = "error"; }
      // The spinner only while a page is on its way: an animation left running below the last
      // row costs a slow PC's CPU for as long as the window is open.
      else if (!f.done && f.loadingNext) { footer = "Loading more calls…"; footerKind = "loading"; }
      else if (!f.done) { footer = "Scroll for more calls"; footerKind = "more"; }
      else { footer = n > 20 ? `End of history · ${formatCount(n)} calls` : ""; footerKind = "end"; }
    }
    this.footer.replaceChildren();
    this.footer.className = `list-footer footer-${footerKind}`;
    if (footerKind === "loading") this.footer.append(h("span", { class: "spinner", "aria-hidden": "true" }));
    if (footer) this.footer.append(h("span", { text: footer }));
    if (footerKind === "error") this.footer.append(h("button", { type: "button", class: "link-btn", text: "Retry", onclick: () => f.retryNext() }));
    this.footer.hidden = !footer;
    this.list.footerChanged();

    // Empty / error states.
    this.emptyEl.replaceChildren();
    const empty = n === 0 && (f.status === "ready" || f.status === "error");
    this.emptyEl.hidden = !empty;
    if (empty && f.status === "error") {
      this.emptyEl.append(icon("alert", "icon empty-icon"), h("p", { class: "empty-title", text: "Couldn't load calls" }), h("p", { class: "empty-text", text: f.error ?? "" }),
        h("button", { type: "button", class: "btn", text: "Try again", onclick: () => this.reload() }));
    } else if (empty && hasFilters(f.query)) {
      this.emptyEl.append(icon("search", "icon empty-icon"), h("p", { class: "empty-title", text: "No calls match" }),
        h("p", { class: "empty-text", text: "Try another spelling or number format, or widen the filters." }),
        h("button", { type: "button", class: "btn", text: "Clear filters", onclick: () => this.clearFilters() }));
    } else if (empty && health.value?.attention && health.value.status === "not_receiving") {
      // No promise of calls that cannot come: say what is missing instead.
      this.emptyEl.append(icon("alert", "icon empty-icon"), h("p", { class: "empty-title", text: "No calls can reach this desk yet" }),
        h("p", { class: "empty-text", "data-testid": "empty-attention", text: health.value.attention.text }));
    } else if (empty) {
      this.emptyEl.append(icon("phone", "icon empty-icon"), h("p", { class: "empty-title", text: "No calls yet" }),
        h("p", { class: "empty-text", text: "Calls appear here the moment the phone system reports them." }));
    }
    this.viewport.setAttribute("aria-busy", f.status === "loading" ? "true" : "false");
    this.viewport.classList.toggle("is-stale", f.status === "loading" && n > 0);
  }

  private onRender(first: number, last: number): void {
    if (last >= first) this.feed.ensure(first, last);
  }

  /** A call changed in the engine. */
  onCallChanged(call: CallView): void {
    this.feed.applyLive(call);
    this.detail.callChanged(call.id);
  }

  private tick(): void {
    // Live calls count up every second; relative times ("3 min ago") refresh each minute.
    const m = Math.floor(Date.now() / 60_000);
    const minute = m !== this.lastMinute;
    this.lastMinute = m;
    for (const el of this.list.spacer.children) {
      const r = this.refs.get(el as HTMLElement);
      if (!r?.call || (el as HTMLElement).hidden) continue;
      if (isLive(r.call)) setText(r.dur, durationText(r.call));
      if (minute) setText(r.time, formatCallTime(r.call.started_at));
    }
    const now = Date.now();
    let expired = false;
    for (const [id, t] of this.newIds) if (now - t > 4000) { this.newIds.delete(id); expired = true; }
    if (expired) this.list.refresh();
  }

  private showPill(n: number): void {
    this.pendingNew += n;
    setText(this.newPill.lastElementChild!, `${this.pendingNew} new ${this.pendingNew === 1 ? "call" : "calls"}`);
    this.newPill.hidden = false;
  }

  private hidePill(): void {
    this.pendingNew = 0;
    this.newPill.hidden = true;
  }

  // ------------------------------------------------------------------------------------------
  // Selection and keyboard

  private select(id: number, opts: { open?: boolean; scroll?: boolean } = {}): void {
    this.activeId = id;
    const i = this.feed.indexOf(id);
    if (i >= 0) {
      if (opts.scroll) this.list.scrollToIndex(i);
      const el = this.list.elementAt(i);
      if (el?.id) this.viewport.setAttribute("aria-activedescendant", el.id);
    }
    if (opts.open || this.detail.isOpen) this.openDetail(id, opts.open === true);
    this.list.refresh();
  }

  private openDetail(id: number, immediate: boolean): void {
    window.clearTimeout(this.detailFollow);
    const go = () => {
      this.detail.open(id, this.feed.byId(id));
      this.el.classList.add("has-detail");
      this.list.refresh();
    };
    if (immediate) go();
    else this.detailFollow = window.setTimeout(go, 90);
  }

  /** Opens a call by id (notification "Open" action), loading it if it is not in the list. */
  showCall(id: number): void {
    const i = this.feed.indexOf(id);
    if (i >= 0) this.select(id, { open: true, scroll: true });
    else {
      this.activeId = id;
      this.openDetail(id, true);
    }
  }

  private moveActive(i: number, open = false): void {
    const n = this.feed.length;
    if (n === 0) return;
    const idx = Math.max(0, Math.min(n - 1, i));
    const c = this.feed.get(idx);
    this.list.scrollToIndex(idx);
    if (!c) return;
    this.select(c.id, { open });
  }

  private onListKey(e: KeyboardEvent): void {
    const cur = this.activeId === null ? -1 : this.feed.indexOf(this.activeId);
    const page = this.list.pageRows;
    switch (e.key) {
      case "ArrowDown": this.moveActive(cur + 1); break;
      case "ArrowUp":
        if (cur <= 0) { this.searchInput.focus(); break; }
        this.moveActive(cur - 1);
        break;
      case "PageDown": this.moveActive(cur + page); break;
      case "PageUp": this.moveActive(Math.max(0, cur - page)); break;
      case "Home": this.moveActive(0); break;
      case "End": this.moveActive(this.feed.length - 1); break;
      case "Enter":
      case " ":
        if (this.activeId !== null) this.select(this.activeId, { open: true });
        else this.moveActive(0, true);
        break;
      case "Escape":
        if (this.detail.isOpen) this.detail.close();
        else return;
        break;
      default:
        return;
    }
    e.preventDefault();
  }

  focusSearch(): void {
    this.searchInput.focus();
    this.searchInput.select();
  }

  private async exportCsv(): Promise<void> {
    const q = this.query();
    if (!q) return;
    const f = this.feed;
    const howMany = f.total !== null ? `${formatCount(f.total)} ${f.total === 1 ? "call" : "calls"}`
      : f.totalAtLeast !== null ? `${formatCount(f.totalAtLeast)}+ calls` : "The calls";
    this.exportBtn.disabled = true;
    try {
      await showExportDialog({ ...q, limit: 0, cursor: null }, howMany);
    } finally {
      this.exportBtn.disabled = false;
    }
  }
}

function select(label: string, options: [string, string][], onchange: () => void): HTMLSelectElement {
  const sel = h("select", { class: "select", "aria-label": label, onchange });
  for (const [v, t] of options) sel.append(h("option", { value: v, text: t }));
  h("div", { class: "select-wrap" }, sel, icon("chevron", "icon select-chev"));
  return sel;
}
