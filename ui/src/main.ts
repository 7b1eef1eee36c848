import "./styles.css";
import { commands, events, type PauseState } from "./bindings";
import { h, icon, setIcon } from "./dom";
import { formatClock } from "./format";
import { health, pause } from "./state";
import { toast, toastError } from "./toast";
import { LogView } from "./views/log";
import { SettingsPage } from "./views/settings";
import { HealthPage, STATUS_TEXT, statusTone } from "./views/health";
import { HubPage } from "./views/hub";

type Tab = "log" | "settings" | "health" | "hub";

function main(): void {
  const root = document.getElementById("app")!;
  const log = new LogView();
  const settingsPage = new SettingsPage();
  const healthPage = new HealthPage();
  const hubPage = new HubPage();
  const views: Record<Tab, HTMLElement> = { log: log.el, settings: settingsPage.el, health: healthPage.el, hub: hubPage.el };
  const labels: Record<Tab, string> = { log: "Calls", settings: "Settings", health: "Health", hub: "Hub" };
  const tabIcons = { log: "list", settings: "sliders", health: "pulse", hub: "server" } as const;

  // ---- Tabs
  const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": "CallPop" });
  const tabs = new Map<Tab, HTMLButtonElement>();
  let current: Tab = "log";
  const main = h("main", { class: "main" });
  for (const t of Object.keys(views) as Tab[]) {
    const tabId = `tab-${t}`;
    const panelId = `panel-${t}`;
    const btn = h("button", {
      type: "button", class: "tab", id: tabId, role: "tab", "aria-controls": panelId, "aria-selected": t === current ? "true" : "false",
      tabindex: t === current ? 0 : -1, "data-tab": t, onclick: () => select(t),
    }, icon(tabIcons[t]), h("span", { text: labels[t] }), h("span", { class: "tab-dot", "aria-hidden": "true" }));
    btn.addEventListener("keydown", (e) => {
      const order = Object.keys(views) as Tab[];
      const i = order.indexOf(t);
      let next: Tab | null = null;
      if (e.key === "ArrowRight") next = order[(i + 1) % order.length];
      else if (e.key === "ArrowLeft") next = order[(i + order.length - 1) % order.length];
      else if (e.key === "Home") next = order[0];
      else if (e.key === "End") next = order[order.length - 1];
      if (next) {
        e.preventDefault();
        select(next);
        tabs.get(next)?.focus();
      }
    });
    tabs.set(t, btn);
    tablist.append(btn);
    const panel = views[t];
    panel.id = panelId;
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", tabId);
    panel.hidden = t !== current;
    main.append(panel);
  }
  log.onAutostart = async () => {
    const r = await settingsPage.turnOnAutostart();
    if (r === "in_form") select("settings");
    return r;
  };
  hubPage.onRoleChanged = () => {
    void settingsPage.load();
    void healthPage.load();
  };
  healthPage.onFix = (section) => {
    select("settings");
    settingsPage.show(section);
  };
  function select(t: Tab): void {
    if (t === current) return;
    current = t;
    for (const [k, b] of tabs) {
      b.setAttribute("aria-selected", k === t ? "true" : "false");
      b.tabIndex = k === t ? 0 : -1;
      views[k].hidden = k !== t;
    }
    document.body.dataset.view = t;
    if (t === "health") healthPage.refresh();
    if (t === "hub") void hubPage.load();
  }
  document.body.dataset.view = current;
  settingsPage.onDirtyChange = (dirty) => {
    tabs.get("settings")!.classList.toggle("has-dot", dirty);
    tabs.get("settings")!.setAttribute("aria-label", dirty ? "Settings (unsaved changes)" : "Settings");
  };

  // ---- Status badge
  const statusText = h("span", { class: "status-text", text: "Connecting…" });
  const statusBtn = h("button", { type: "button", class: "status-badge tone-neutral", "data-testid": "status-badge", title: "Open Health", onclick: () => select("health") },
    h("span", { class: "badge-dot" }), statusText);
  health.subscribe((v) => {
    if (!v) return;
    statusBtn.className = `status-badge tone-${statusTone(v.status)}`;
    statusBtn.dataset.status = v.status;
    statusText.textContent = STATUS_TEXT[v.status];
    statusBtn.title = v.attention?.text ?? "Open Health";
    statusBtn.setAttribute("aria-label", `Status: ${STATUS_TEXT[v.status]}. Open Health`);
    tabs.get("health")!.classList.toggle("has-dot", v.status !== "ok");
  });

  // ---- Pause menu
  const pauseIcon = icon("bell");
  const pauseLabel = h("span", { class: "pause-label", text: "Popups on" });
  const pauseBtn = h("button", { type: "button", class: "btn btn-ghost pause-btn", "aria-haspopup": "menu", "aria-expanded": "false", "data-testid": "pause-button" }, pauseIcon, pauseLabel, icon("chevron", "icon chev"));
  const menu = h("div", { class: "menu", role: "menu", hidden: true, "aria-label": "Pause popups" });
  const item = (label: string, run: () => Promise<PauseState>, testid: string) => {
    const b = h("button", { type: "button", class: "menu-item", role: "menuitem", tabindex: -1, text: label, "data-testid": testid });
    b.addEventListener("click", async () => {
      closeMenu(true);
      try {
        const p = await run();
        pause.set(p);
        toast(p.paused ? (p.until ? `Popups paused until ${formatClock(new Date(p.until))}` : "Popups paused until you resume") : "Popups resumed", "info");
      } catch (e) {
        toastError("Couldn't change popups", e);
      }
    });
    return b;
  };
  const pauseHour = item("Pause for 1 hour", () => commands.setPause(60), "pause-hour");
  const pauseForever = item("Pause until resumed", () => commands.setPause(null), "pause-forever");
  const resume = item("Resume popups", () => commands.resume(), "pause-resume");
  menu.append(pauseHour, pauseForever, h("div", { class: "menu-sep", role: "separator" }), resume);
  const menuItems = () => [...menu.querySelectorAll<HTMLButtonElement>(".menu-item")].filter((b) => !b.disabled);
  function openMenu(): void {
    menu.hidden = false;
    pauseBtn.setAttribute("aria-expanded", "true");
    menuItems()[0]?.focus();
    document.addEventListener("pointerdown", outside, true);
  }
  function closeMenu(focusButton: boolean): void {
    if (menu.hidden) return;
    menu.hidden = true;
    pauseBtn.setAttribute("aria-expanded", "false");
    document.removeEventListener("pointerdown", outside, true);
    if (focusButton) pauseBtn.focus();
  }
  function outside(e: Event): void {
    if (!menu.contains(e.target as Node) && !pauseBtn.contains(e.target as Node)) closeMenu(false);
  }
  pauseBtn.addEventListener("click", () => (menu.hidden ? openMenu() : closeMenu(true)));
  pauseBtn.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") {
      e.preventDefault();
      openMenu();
    }
  });
  menu.addEventListener("keydown", (e) => {
    const items = menuItems();
    const i = items.indexOf(document.activeElement as HTMLButtonElement);
    if (e.key === "ArrowDown") items[(i + 1) % items.length]?.focus();
    else if (e.key === "ArrowUp") items[(i - 1 + items.length) % items.length]?.focus();
    else if (e.key === "Home") items[0]?.focus();
    else if (e.key === "End") items[items.length - 1]?.focus();
    else if (e.key === "Escape" || e.key === "Tab") { closeMenu(e.key === "Escape"); if (e.key === "Tab") return; }
    else return;
    e.preventDefault();
  });
  // The label follows the real setting, not only the pause: popups turned off in Settings (or
  // with no notification server) are not "on".
  const showPopupState = (): void => {
    const p = pause.value;
    const paused = Boolean(p?.paused);
    const notifications = health.value?.parts.notifications?.state;
    const off = notifications === "off" || notifications === "error";
    setIcon(pauseIcon, paused || off ? "bellOff" : "bell");
    pauseBtn.classList.toggle("is-paused", paused || off);
    pauseLabel.textContent = paused ? (p?.until ? `Paused until ${formatClock(new Date(p.until))}` : "Popups paused") : off ? "Popups off" : "Popups on";
    pauseBtn.setAttribute("aria-label", `${pauseLabel.textContent}. Pause menu`);
    resume.disabled = !paused;
  };
  pause.subscribe(showPopupState);
  health.subscribe(showPopupState);

  const header = h("header", { class: "app-header" },
    h("div", { class: "brand" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, icon("phone")), h("span", { class: "brand-name", text: "CallPop" })),
    tablist,
    h("div", { class: "header-right" }, statusBtn, h("div", { class: "menu-anchor" }, pauseBtn, menu)));
  root.append(header, main);

  // ---- Global shortcuts
  document.addEventListener("keydown", (e) => {
    const mod = e.ctrlKey || e.metaKey;
    const inField = (e.target as HTMLElement).matches?.("input, textarea, select, [contenteditable]");
    if (mod && ["1", "2", "3"].includes(e.key)) {
      e.preventDefault();
      select((["log", "settings", "health"] as Tab[])[Number(e.key) - 1]);
      tabs.get(current)?.focus();
    } else if ((mod && e.key.toLowerCase() === "f") || (e.key === "/" && !inField && !mod)) {
      e.preventDefault();
      select("log");
      log.focusSearch();
    }
  });

  // ---- Data
  const subscribe = (p: Promise<unknown>, what: string) => p.catch((e) => toastError(`Live updates unavailable (${what})`, e));
  // Listening before the first page is asked for: a call stored in between is then either in
  // the page or in an event (which the feed keeps until the page is in), never in neither.
  void subscribe(events.callChanged((c) => log.onCallChanged(c)), "calls").finally(() => log.start());
  void settingsPage.load();
  void healthPage.load();
  commands.getPause().then((p) => pause.set(p), (e) => toastError("Couldn't read the popup pause state", e));

  void subscribe(events.healthChanged((v) => health.set(v)), "health");
  // The tray menu pauses and resumes too.
  void subscribe(events.pauseChanged((p) => pause.set(p)), "pause");
  void subscribe(events.openCall((id) => {
    select("log");
    log.showCall(id);
  }), "notifications");

  // Relative date ranges ("Today") move on at midnight.
  let day = new Date().toDateString();
  window.setInterval(() => {
    const d = new Date().toDateString();
    if (d !== day) {
      day = d;
      log.reload();
    }
  }, 60_000);
  // Pause "until" may pass while the window is open.
  window.setInterval(() => {
    const p = pause.value;
    if (p?.paused && p.until && Date.parse(p.until) <= Date.now()) commands.getPause().then((x) => pause.set(x), () => undefined);
  }, 30_000);

  window.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    toastError("Something went wrong", e.reason);
  });
}

main();
