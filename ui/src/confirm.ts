// A modal question before a change that sends call data or credentials somewhere new. The
// safe answer (Cancel) has the focus, and Escape means Cancel.
import { h } from "./dom";

/** Shows `questions` under `title`; resolves true only when the confirming button is pressed. */
export function confirmChanges(title: string, questions: string[], confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const yes = h("button", { type: "button", class: "btn btn-primary", text: confirmLabel, "data-testid": "confirm-yes" });
    const no = h("button", { type: "button", class: "btn", text: "Cancel", "data-testid": "confirm-no" });
    const titleId = "confirm-title";
    const dialog = h("dialog", { class: "confirm-dialog", "aria-labelledby": titleId, "data-testid": "confirm" },
      h("h2", { id: titleId, text: title }),
      ...questions.map((q) => h("p", { text: q })),
      h("div", { class: "confirm-actions" }, no, yes));
    const done = (answer: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    yes.addEventListener("click", () => done(true));
    no.addEventListener("click", () => done(false));
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}
