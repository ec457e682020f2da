// The transfer dialog (spec 13.6): to an agent of the tenant or to a group, with a note for the routing trace.
// Shared by the agent desk and the supervisor's watched conversation. A refusal (NOT_FOUND, CONFLICT...) is shown
// in the dialog, which stays open to try another target.

import { t } from "./i18n.js";
import { reasonOf } from "./util.js";

/** Ask where to transfer conversation `id`, do it; true once transferred, false if cancelled. */
export function askTransfer(client, id, returnFocus) {
  const dialog = document.getElementById("transfer-dialog");
  const form = document.getElementById("transfer-form");
  const target = document.getElementById("transfer-target");
  const note = document.getElementById("transfer-note");
  const error = dialog.querySelector('[data-testid="transfer-error"]');
  target.value = "";
  note.value = "";
  error.hidden = true;
  return new Promise((resolve) => {
    const finish = (done) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      if (returnFocus) returnFocus.focus();
      resolve(done);
    };
    const onClose = () => finish(false);
    const onSubmit = async (e) => {
      e.preventDefault();
      if (e.submitter && e.submitter.value === "cancel") {
        finish(false);
        return;
      }
      const name = target.value.trim();
      if (!name) {
        target.focus();
        return;
      }
      const kind = form.elements.kind.value;
      try {
        await client.service.transfer(id, { [kind === "group" ? "group" : "agent"]: name, note: note.value.trim() });
        finish(true);
      } catch (refusal) {
        error.textContent = t("refused", { reason: reasonOf(refusal) });
        error.hidden = false;
        target.focus();
      }
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    target.focus();
  });
}
