// last-good.json: per model, the version this device last served, with its serving settings.
// At start the agent serves these from its cache before the relay answers (the relay may be
// down, or the device restarted in the middle of an update), and the cache keeps their files
// until a replacement serves.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DesiredModel, messageParser, type DesiredModel as Entry } from '@outpost/shared';

export const LAST_GOOD_FILE = 'last-good.json';
const parseEntry = messageParser(DesiredModel);

export class LastGood {
  readonly #file: string;
  readonly #entries = new Map<string, Entry>();

  constructor(dataDir: string) {
    this.#file = join(dataDir, LAST_GOOD_FILE);
    if (!existsSync(this.#file)) return;
    try {
      const list = JSON.parse(readFileSync(this.#file, 'utf8')) as unknown[];
      // Each entry is checked as a desired model would be: a damaged file costs its bad entries.
      for (const item of Array.isArray(list) ? list : []) {
        const parsed = parseEntry.parse(JSON.stringify(item));
        if (parsed.ok) this.#entries.set(parsed.value.name, parsed.value);
      }
    } catch {
      // unreadable: start with nothing, as a new device would
    }
  }

  entries(): Entry[] {
    return [...this.#entries.values()];
  }

  /** The files these versions need: each model and its sample. */
  shas(): Set<string> {
    return new Set(this.entries().flatMap((e) => (e.sample ? [e.sha256, e.sample.sha256] : [e.sha256])));
  }

  record(entry: Entry): void {
    this.#entries.set(entry.name, entry);
    this.#save();
  }

  forget(name: string): void {
    if (this.#entries.delete(name)) this.#save();
  }

  #save(): void {
    // Written aside and renamed: a crash mid-write leaves the previous file whole.
    const tmp = `${this.#file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.entries(), null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, this.#file);
  }
}
