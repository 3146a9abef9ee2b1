// Tests that need a program from a Debian package: found on the PATH, installed with apt-get
// where this user can (root), or skipped with one line naming the package. CI installs them
// all (.ci/run), so nothing is skipped there.

import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Packages some test skipped for, one per line, read by scripts/check-coverage.ts: a run that
 * skipped tests measures less code, so the coverage floors are not held against it.
 */
export const MISSING_PACKAGES_FILE = join(process.cwd(), '.tap', 'missing-packages.txt');

function present(command: string): boolean {
  return command.startsWith('/') ? existsSync(command) : !spawnSync('sh', ['-c', `command -v ${command}`]).status;
}

const tried = new Set<string>();

/**
 * Makes sure `command` (a name on the PATH, or an absolute path) is there, installing the
 * Debian package `pkg` as root when it is not. Returns false (a reason for tap's `skip`) or
 * the skip line when it cannot be had.
 */
export function needPackage(command: string, pkg: string): false | string {
  if (present(command)) return false;
  if (process.getuid?.() === 0 && present('apt-get') && !tried.has(pkg)) {
    tried.add(pkg);
    try {
      // Test files run in parallel processes: one apt at a time (flock), the others wait their turn.
      execFileSync('flock', ['/tmp/outpost-tests-apt.lock', 'sh', '-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkg}`], { stdio: 'ignore', timeout: 600_000 });
    } catch {
      // reported below as a skip
    }
    if (present(command)) return false;
  }
  mkdirSync(dirname(MISSING_PACKAGES_FILE), { recursive: true });
  appendFileSync(MISSING_PACKAGES_FILE, `${pkg}\n`);
  return `needs ${command} (apt-get install -y ${pkg})`;
}
