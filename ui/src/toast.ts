// Toast notifications: a polite live region for information, an assertive one for errors.
import { h, icon, errorMessage, type IconName } from "./dom";

type Kind = "info" | "success" | "error";
type ToastAction = { label: string; run: () => void };

let region: HTMLElement | null = null;
let alertRegion: HTMLElement | null = null;

function ensureRegions(): [HTMLElement, HTMLElement] {
  if (!region || !alertRegion) {
    const host = h("div", { class: "toasts" });
    region = h("div", { class: "toast-stack", role: "status", "aria-live": "polite" });
    alertRegion = h("div", { class: "toast-stack", role: "alert", "aria-live": "assertive" });
    host.append(alertRegion, region);
    document.body.append(host);
  }
  return [region, alertRegion];
}

const ICON_FOR: Record<Kind, IconName> = { info: "info", success: "check", error: "alert" };

export function toast(message: string, kind: Kind = "info", opts: { action?: ToastAction; detail?: string; timeout?: number } = {}): void {
  const [polite, assertive] = ensureRegions();
  const el = h("div", { class: `toast toast-${kind}`, "data-kind": kind });
  const close = () => {
    el.classList.add("toast-leaving");
    window.setTimeout(() => el.remove(), 160);
  };
  const body = h("div", { class: "toast-body" }, h("div", { class: "toast-msg", text: message }), opts.detail ? h("div", { class: "toast-detail", text: opts.detail }) : null);
  el.append(icon(ICON_FOR[kind], "icon toast-icon"), body);
  if (opts.action) {
    const a = opts.action;
    el.append(h("button", { type: "button", class: "btn btn-small btn-ghost toast-action", text: a.label, onclick: () => { a.run(); close(); } }));
  }
  el.append(h("button", { type: "button", class: "icon-btn toast-close", "aria-label": "Dismiss", onclick: close }, icon("x")));
  const target = kind === "error" ? assertive : polite;
  target.append(el);
  while (target.children.length > 4) target.firstElementChild?.remove();
  const timeout = opts.timeout ?? (kind === "error" ? 9000 : 5000);
  let timer = window.setTimeout(close, timeout);
  el.addEventListener("mouseenter", () => window.clearTimeout(timer));
  el.addEventListener("mouseleave", () => { timer = window.setTimeout(close, 2500); });
}

export function toastError(context: string, e: unknown): void {
  toast(context, "error", { detail: errorMessage(e) });
}
