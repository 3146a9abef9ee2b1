// Reading processes from /proc (Linux), for tests that check what a job left behind.

import { readFileSync } from 'node:fs';

/** Whether a process runs (a zombie waiting for init to reap it has ended). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
