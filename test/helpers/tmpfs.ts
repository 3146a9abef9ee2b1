// A small tmpfs for tests that fill a disk: mounted as root (or with CAP_SYS_ADMIN), unmounted
// at teardown. Where it cannot be mounted, the test is skipped with one line saying why.

import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

/** The mount point, or the skip line when no tmpfs can be mounted here. */
export function mountTmpfs(t: Test, sizeMiB: number): { dir: string } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-tmpfs-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  // A lazy unmount: programs still writing there are let go of the file system when they exit.
  t.teardown(() => {
    if (mounted.status === 0) spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  if (mounted.status !== 0) return { skip: `cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): ${(mounted.stderr || mounted.error?.message || '').trim()}` };
  return { dir };
}

/** Writes `file` until the file system refuses another byte; returns the bytes written. */
export function fillUp(file: string): number {
  mkdirSync(join(file, '..'), { recursive: true });
  const fd = openSync(file, 'w');
  let written = 0;
  try {
    for (const size of [1024 * 1024, 64 * 1024, 4096, 512]) {
      const chunk = Buffer.alloc(size, 1);
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}
