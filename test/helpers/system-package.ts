// Tests that need a program from a Debian package: found on the PATH, installed with apt-get
// where this user can (root), or skipped with one line naming the package. CI installs them
// all (.ci/run), so nothing is skipped there.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

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
      execFileSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkg}`], { stdio: 'ignore', timeout: 600_000 });
    } catch {
      // reported below as a skip
    }
    if (present(command)) return false;
  }
  return `needs ${command} (apt-get install -y ${pkg})`;
}
