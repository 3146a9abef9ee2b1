// Modal dialogs for actions: a confirmation for what cannot be undone, and forms whose submit
// calls the API and shows the relay's refusal in the dialog itself. A toast tells what was done.

import { ApiError } from './api.js';
import { el, fill } from './dom.js';

type Content = Node | string | null | undefined | false;

export interface DialogOptions {
  title: string;
  /** The body: text, fields. */
  body: Content[];
  submitLabel: string;
  danger?: boolean;
  /** Runs on submit; a thrown error's message shows in the dialog and it stays open. */
  submit: (form: HTMLFormElement) => Promise<Content[] | void>;
  id?: string;
}

/**
 * Opens a dialog; resolves true when its action succeeded, false when dismissed before it did.
 * When `submit` returns content (a token shown once), the dialog shows it in place with a Close
 * button. Esc and Cancel do nothing while the relay is being asked.
 */
export function openDialog(o: DialogOptions): Promise<boolean> {
  // One at a time: a second click on the button that opened it does nothing.
  if (document.querySelector('dialog.dialog')) return Promise.resolve(false);
  return new Promise((resolve) => {
    const error = el('p', { class: 'error', role: 'alert' });
    const submit = el('button', { type: 'submit', class: o.danger ? 'danger' : 'primary' }, o.submitLabel);
    const cancel = el('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const form = el('form', { method: 'dialog', class: 'dialog-form' }, el('h2', {}, o.title), ...o.body, error, el('div', { class: 'buttons' }, cancel, submit));
    const dialog = el('dialog', { id: o.id ?? null, class: 'dialog' }, form);
    let done = false;
    let busy = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    // Shown once (an enrollment token): closing it, by Esc too, is the action's success.
    let shownOnce = false;
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('cancel', (e) => {
      // While the relay is asked, the dialog stays: what it answers (a token) must be seen.
      if (busy) e.preventDefault();
      else finish(shownOnce);
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      error.textContent = '';
      submit.disabled = true;
      cancel.disabled = true;
      busy = true;
      o.submit(form).then(
        (shown) => {
          busy = false;
          if (!shown) return finish(true);
          shownOnce = true;
          // Something to read once (an enrollment token): shown in place of the form.
          const close = el('button', { type: 'button', class: 'primary' }, 'Close');
          close.addEventListener('click', () => finish(true));
          fill(form, el('h2', {}, o.title), ...shown, el('div', { class: 'buttons' }, close));
          close.focus();
        },
        (err: unknown) => {
          busy = false;
          submit.disabled = false;
          cancel.disabled = false;
          error.textContent = err instanceof ApiError || err instanceof Error ? err.message : String(err);
        },
      );
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Asks before something destructive; runs `action` and shows its refusal in the dialog. */
export function confirmAction(title: string, message: string, label: string, action: () => Promise<unknown>): Promise<boolean> {
  return openDialog({ title, body: [el('p', {}, message)], submitLabel: label, danger: true, id: 'confirm', submit: async () => void (await action()) });
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;

/** A one-line note of what happened (or what was refused), for a few seconds. */
export function toast(message: string, kind: 'ok' | 'error' = 'ok'): void {
  let t = document.getElementById('toast');
  if (!t) {
    t = el('div', { id: 'toast', role: 'status' });
    document.body.append(t);
  }
  t.className = `toast ${kind}`;
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), kind === 'error' ? 10_000 : 4000);
}

/** Runs an API call from a button: a refusal shows as an error toast with the relay's message. */
export async function act(what: () => Promise<unknown>, done: string): Promise<boolean> {
  try {
    await what();
    toast(done);
    return true;
  } catch (err) {
    toast(err instanceof Error ? err.message : String(err), 'error');
    return false;
  }
}

/** Opens a dialog from a button: one that cannot open (its data did not load) says why. */
let launching = false;
export function launch(open: () => Promise<unknown>): void {
  // A dialog that reads data first (models, targets) opens once, however often it is clicked.
  if (launching) return;
  launching = true;
  open()
    .catch((err: unknown) => toast(err instanceof Error ? err.message : String(err), 'error'))
    .finally(() => (launching = false));
}

/** A labelled form field. */
export function field(label: string, input: HTMLElement, hint?: string): HTMLLabelElement {
  return el('label', { class: 'field' }, el('span', { class: 'label' }, label), input, hint ? el('span', { class: 'hint' }, hint) : null);
}
