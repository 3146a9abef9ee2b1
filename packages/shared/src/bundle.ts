// Job bundles: a folder packed as tar.gz. Unpacking refuses, before writing a byte, any entry
// that would land outside the target folder (absolute paths, `..`, links leaving it) or that
// is not a plain file, folder or in-folder symlink.

import { mkdirSync } from 'node:fs';
import { posix } from 'node:path';
import { OutpostError } from './errors.js';

// tar is loaded on first use: an agent that never runs a job does not carry it in memory.
const loadTar = () => import('tar');

export async function packBundle(dir: string, file: string): Promise<void> {
  const tar = await loadTar();
  await tar.c({ gzip: true, cwd: dir, file, portable: true, filter: (p) => !/(^|\/)(node_modules|\.git)(\/|$)/.test(p) }, ['.']);
}

function escapes(path: string): boolean {
  const clean = posix.normalize(path.replace(/\\/g, '/'));
  return posix.isAbsolute(clean) || clean === '..' || clean.startsWith('../');
}

/** Lists the bundle and throws OUTPOST_ERR_BUNDLE_INVALID naming the first unsafe entry. */
export async function checkBundle(file: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  let problem: string | undefined;
  const tar = await loadTar();
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (entry) => {
        if (problem) return;
        const { path, type, linkpath } = entry;
        if (escapes(path)) problem = `"${path}" would be written outside the job folder`;
        else if (type === 'SymbolicLink' || type === 'Link') {
          const target = type === 'SymbolicLink' ? posix.join(posix.dirname(path), linkpath ?? '') : (linkpath ?? '');
          if (!linkpath || posix.isAbsolute(linkpath) || escapes(target)) problem = `link "${path}" points outside the job folder`;
        } else if (type !== 'File' && type !== 'OldFile' && type !== 'Directory' && type !== 'ContiguousFile') {
          problem = `"${path}" is a ${type}, not a file or folder`;
        }
        if (type === 'File' || type === 'OldFile') {
          files++;
          bytes += entry.size ?? 0;
        }
      },
    });
  } catch (err) {
    throw new OutpostError('OUTPOST_ERR_BUNDLE_INVALID', `the bundle is not a readable tar.gz: ${(err as Error).message}`);
  }
  if (problem) throw new OutpostError('OUTPOST_ERR_BUNDLE_INVALID', `refused bundle: ${problem}`);
  return { files, bytes };
}

export async function unpackBundle(file: string, dir: string): Promise<void> {
  await checkBundle(file);
  mkdirSync(dir, { recursive: true });
  const tar = await loadTar();
  await tar.x({ file, cwd: dir, strict: true, preservePaths: false, preserveOwner: false });
}
