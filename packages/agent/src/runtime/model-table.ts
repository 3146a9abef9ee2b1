// The models this agent serves right now, by name. A swap is one assignment: requests that
// started on the old version finish on it, new ones go to the new version.

import type { ServedModel } from './served-model.js';

export class ModelTable {
  readonly #models = new Map<string, ServedModel>();

  get(name: string): ServedModel | undefined {
    return this.#models.get(name);
  }

  all(): ServedModel[] {
    return [...this.#models.values()];
  }

  /** Puts `model` in service and retires the one it replaces. */
  async swap(model: ServedModel): Promise<void> {
    const old = this.#models.get(model.name);
    this.#models.set(model.name, model);
    if (old && old !== model) await old.retire();
  }

  async remove(name: string): Promise<void> {
    const old = this.#models.get(name);
    this.#models.delete(name);
    await old?.retire();
  }

  async clear(): Promise<void> {
    for (const name of [...this.#models.keys()]) await this.remove(name);
  }
}
