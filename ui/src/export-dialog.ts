// "Export for a spreadsheet": where to save (the last folder used is remembered), then the
// file with "Open" and "Show in folder". Dates are written the way this computer writes them.
import { commands, type CallQuery, type DateStyle, type ExportFolder, type ExportResult } from "./bindings";
import { h, icon, clear, errorMessage } from "./dom";
import { formatCount } from "./format";
import { toastError } from "./toast";

const REMEMBERED_FOLDER = "callpop.export-folder";

/** Day/month/year order and 12- or 24-hour clock of the system locale. */
export function localDateStyle(locale?: string): DateStyle {
  const parts = new Intl.DateTimeFormat(locale, { year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(new Date(2026, 11, 31));
  const order = parts.filter((p) => p.type === "year" || p.type === "month" || p.type === "day").map((p) => p.type[0]).join("");
  const hour12 = new Intl.DateTimeFormat(locale, { hour: "numeric" }).resolvedOptions().hour12 ?? false;
  return { order: order === "dmy" ? "dmy" : order === "ymd" ? "ymd" : "mdy", hour12 };
}

function remembered(): string | null {
  try {
    return localStorage.getItem(REMEMBERED_FOLDER);
  } catch {
    return null;
  }
}

function remember(folder: string): void {
  try {
    localStorage.setItem(REMEMBERED_FOLDER, folder);
  } catch {
    // Private storage off: the default folder is offered next time.
  }
}

/** Opens the dialog for the calls of `query`; `howMany` is the log's count ("1,234 calls"). */
export async function showExportDialog(query: CallQuery, howMany: string): Promise<void> {
  let folders: ExportFolder[];
  try {
    folders = await commands.exportFolders();
  } catch (e) {
    toastError("Export failed", e);
    return;
  }
  const titleId = "export-title";
  const body = h("div", { class: "export-body" });
  const dialog = h("dialog", { class: "confirm-dialog export-dialog", "aria-labelledby": titleId, "data-testid": "export-dialog" },
    h("h2", { id: titleId, text: "Export calls for a spreadsheet" }), body);
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  dialog.addEventListener("cancel", (e) => {
    e.preventDefault();
    close();
  });
  document.body.append(dialog);
  choose();
  dialog.showModal();

  function choose(): void {
    clear(body);
    const last = remembered();
    const known = folders.find((f) => f.path === last);
    const other = h("input", { type: "text", class: "input mono", "aria-label": "Folder", placeholder: folders[0]?.path ?? "", spellcheck: "false", value: last && !known ? last : "" });
    const options = h("div", { class: "export-folders", role: "radiogroup", "aria-label": "Save in" });
    const radios: HTMLInputElement[] = [];
    const pick = (value: string, label: string, detail: string | null, checked: boolean) => {
      const r = h("input", { type: "radio", name: "export-folder", value, checked });
      radios.push(r);
      options.append(h("label", { class: "export-folder" }, r, h("span", null, h("strong", { text: label }), detail ? h("small", { class: "mono", text: detail }) : null)));
      return r;
    };
    folders.forEach((f, i) => pick(f.path, f.label, f.path, known ? f === known : !last && i === 0));
    const otherRadio = pick("", "Another folder", null, !!last && !known);
    options.append(h("div", { class: "export-other" }, other));
    other.addEventListener("focus", () => { otherRadio.checked = true; });
    const error = h("p", { class: "field-error", role: "alert", hidden: true });
    const go = h("button", { type: "button", class: "btn btn-primary", "data-testid": "export-go" }, icon("download"), "Export");
    const cancel = h("button", { type: "button", class: "btn", text: "Cancel", onclick: close });
    body.append(
      h("p", { text: `${howMany} matching your filters, with dates and times as this computer shows them.` }),
      h("p", { class: "export-label", text: "Save in" }), options, error,
      h("div", { class: "confirm-actions" }, cancel, go));
    go.addEventListener("click", async () => {
      const chosen = radios.find((r) => r.checked);
      const folder = chosen === otherRadio ? other.value.trim() : chosen?.value ?? null;
      if (chosen === otherRadio && !folder) {
        error.textContent = "Type the folder to save in, or choose one above.";
        error.hidden = false;
        other.focus();
        return;
      }
      go.disabled = true;
      go.classList.add("is-busy");
      error.hidden = true;
      try {
        const r = await commands.exportCsv({ query, folder: folder || null, dates: localDateStyle() });
        remember(r.folder);
        done(r);
      } catch (e) {
        error.textContent = `The calls were not exported: ${errorMessage(e)}`;
        error.hidden = false;
        go.disabled = false;
        go.classList.remove("is-busy");
      }
    });
    (radios.find((r) => r.checked) ?? radios[0])?.focus();
  }

  function done(r: ExportResult): void {
    clear(body);
    const status = h("p", { class: "field-error", role: "alert", hidden: true });
    const run = async (what: () => Promise<null>) => {
      status.hidden = true;
      try {
        await what();
      } catch (e) {
        status.textContent = errorMessage(e);
        status.hidden = false;
      }
    };
    const open = h("button", { type: "button", class: "btn btn-primary", "data-testid": "export-open", onclick: () => void run(() => commands.openExport(r.path)) }, icon("external"), "Open");
    body.append(
      h("p", { class: "export-done", "data-testid": "export-done" }, icon("check"), `Exported ${formatCount(r.rows)} ${r.rows === 1 ? "call" : "calls"}.`),
      h("p", { class: "export-path mono", text: r.path }),
      status,
      h("div", { class: "confirm-actions" },
        h("button", { type: "button", class: "btn", text: "Done", onclick: close }),
        h("button", { type: "button", class: "btn", "data-testid": "export-show", onclick: () => void run(() => commands.showExport(r.path)) }, icon("list"), "Show in folder"),
        open));
    open.focus();
  }
}
