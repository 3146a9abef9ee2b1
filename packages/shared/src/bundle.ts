// Job bundles: a folder packed as tar.gz. Checking refuses, before a byte is written, any entry
// that would land outside the target folder (absolute paths, `..`, links leaving it once every
// link in the bundle is followed) or that is not a plain file, folder or in-folder link; after
// unpacking, the filesystem's own resolution of every link is checked again.

import { mkdirSync, readdirSync, realpathSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { OutpostError } from './errors.js';

// tar is loaded on first use: an agent that never runs a job does not carry it in memory.
const loadTar = () => import('tar');

export async function packBundle(dir: string, file: string): Promise<void> {
  const tar = await loadTar();
  await tar.c({ gzip: true, cwd: dir, file, portable: true, filter: (p) => !/(^|\/)(node_modules|\.git)(\/|$)/.test(p) }, ['.']);
}

interface BundleEntry {
  type: string;
  linkpath?: string;
}

/** Symlinks followed while resolving one path, as the kernel's ELOOP limit. */
const MAX_LINK_HOPS = 40;

/**
 * Resolves a path inside the bundle the way the filesystem will once it is unpacked: each
 * component that is a symlink in the bundle is replaced by its target. Returns the resolved
 * components, or null when the path leaves the folder (or loops). `q -> .` then `up -> q/..`
 * looks harmless textually and points at the folder's parent; this finds it.
 */
export function resolveInBundle(entries: ReadonlyMap<string, BundleEntry>, components: string[], hops = { n: 0 }): string[] | null {
  const stack: string[] = [];
  for (const c of components) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (stack.length === 0) return null;
      stack.pop();
      continue;
    }
    const entry = entries.get([...stack, c].join('/'));
    if (entry?.type === 'SymbolicLink') {
      if (++hops.n > MAX_LINK_HOPS || !entry.linkpath || entry.linkpath.startsWith('/')) return null;
      const resolved = resolveInBundle(entries, [...stack, ...entry.linkpath.split('/')], hops);
      if (!resolved) return null;
      stack.splice(0, stack.length, ...resolved);
    } else {
      stack.push(c);
    }
  }
  return stack;
}

const split = (path: string) => path.replace(/\\/g, '/').split('/');

/** An entry's path as the bundle's own key (`a/b`, `.` for the folder), or null when it leaves the folder. */
export function bundleEntryKey(path: string): string | null {
  const clean = posix.normalize(path.replace(/\\/g, '/'));
  if (posix.isAbsolute(clean) || clean === '..' || clean.startsWith('../')) return null;
  return clean.replace(/\/+$/, '') || '.';
}

/** Why the bundle's entries are unsafe, or null: every path and link target is resolved through the bundle's own links. */
export function bundleProblem(list: Array<{ path: string; type: string; linkpath?: string }>): string | null {
  const entries = new Map<string, BundleEntry>();
  for (const e of list) {
    const key = bundleEntryKey(e.path);
    if (key === null) return `"${e.path}" would be written outside the job folder`;
    if (e.type !== 'File' && e.type !== 'OldFile' && e.type !== 'ContiguousFile' && e.type !== 'Directory' && e.type !== 'SymbolicLink' && e.type !== 'Link') return `"${e.path}" is a ${e.type}, not a file or folder`;
    // The folder itself may only be a folder: a link in its place would move the whole bundle.
    if (key === '.' && e.type !== 'Directory') return `"${e.path}" names the job folder itself`;
    const before = entries.get(key);
    // A second entry under one name replaces the first when unpacked: a file checked as a file could land as a link.
    if (before && !(before.type === 'Directory' && e.type === 'Directory')) return `"${e.path}" appears twice in the bundle`;
    entries.set(key, { type: e.type, linkpath: e.linkpath });
  }
  for (const [path, e] of entries) {
    if (path === '.') continue;
    const parent = split(path).slice(0, -1);
    if (!resolveInBundle(entries, parent)) return `"${path}" would be written outside the job folder (through a link)`;
    if (e.type === 'SymbolicLink' && (!e.linkpath || e.linkpath.startsWith('/') || !resolveInBundle(entries, [...parent, ...split(e.linkpath)]))) return `link "${path}" points outside the job folder`;
    if (e.type === 'Link' && (!e.linkpath || e.linkpath.startsWith('/') || !resolveInBundle(entries, split(e.linkpath)))) return `link "${path}" points outside the job folder`;
  }
  return null;
}

/** Lists the bundle and throws OUTPOST_ERR_BUNDLE_INVALID naming the first unsafe entry. */
export async function checkBundle(file: string, limits: { maxEntries?: number } = {}): Promise<{ files: number; bytes: number }> {
  const maxEntries = limits.maxEntries ?? 100_000;
  let files = 0;
  let bytes = 0;
  const list: Array<{ path: string; type: string; linkpath?: string }> = [];
  let tooMany = false;
  const tar = await loadTar();
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (entry) => {
        if (list.length >= maxEntries) {
          tooMany = true;
          return;
        }
        list.push({ path: entry.path, type: entry.type, linkpath: entry.linkpath });
        if (entry.type === 'File' || entry.type === 'OldFile' || entry.type === 'ContiguousFile') {
          files++;
          bytes += entry.size ?? 0;
        }
      },
    });
  } catch (err) {
    throw new OutpostError('OUTPOST_ERR_BUNDLE_INVALID', `the bundle is not a readable tar.gz: ${(err as Error).message}`);
  }
  if (tooMany) throw new OutpostError('OUTPOST_ERR_BUNDLE_INVALID', `refused bundle: more than ${maxEntries} entries`);
  const problem = bundleProblem(list);
  if (problem) throw new OutpostError('OUTPOST_ERR_BUNDLE_INVALID', `refused bundle: ${problem}`);
  return { files, bytes };
}

/** After unpacking, every link must still resolve inside the folder (the filesystem's own answer). */
function checkUnpacked(dir: string): void {
  const root = realpathSync(dir);
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isSymbolicLink()) {
        let target: string;
        try {
          target = realpathSync(full);
        } catch {
          continue; // dangling: it points at nothing yet
        }
        if (target !== root && !target.startsWith(`${root}${sep}`)) throw new OutpostError('OUTPOST_ERR_BUNDLE_INVALID', `refused bundle: link "${relative(root, full)}" points outside the job folder`);
      } else if (entry.isDirectory()) walk(full);
    }
  };
  walk(root);
}

export async function unpackBundle(file: string, dir: string): Promise<void> {
  await checkBundle(file);
  mkdirSync(dir, { recursive: true });
  const tar = await loadTar();
  await tar.x({ file, cwd: dir, strict: true, preservePaths: false, preserveOwner: false });
  checkUnpacked(dir);
}
