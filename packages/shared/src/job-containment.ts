// Holding every process a job starts, however it detaches. A process group is not enough: a
// child that calls setsid(2) (or double-forks into a daemon) leaves the group and survives a
// kill of it. Two ways to do better, as systemd and container runtimes do:
// - a cgroup v2 of the run's own, where the host lets this process make one (root, or a
//   systemd unit with Delegate=yes): the kernel puts every descendant in it and `cgroup.kill`
//   ends them all at once;
// - else, a marker in the environment every descendant inherits (/proc/PID/environ), found by
//   scanning /proc when the run ends. A process that clears its own environment escapes this
//   one; the cgroup has no such gap.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type ContainmentKind = 'cgroup' | 'tracking';

export const RUN_MARKER_VARIABLE = 'OUTPOST_RUN_MARKER';

/** What finds a run's processes again from another process (a relay or agent restarted after kill -9). */
export interface ContainmentRecord {
  marker: string;
  cgroup?: string;
}

export interface Containment {
  readonly kind: ContainmentKind;
  readonly record: ContainmentRecord;
  /** Variables the run's process gets. */
  readonly env: Record<string, string>;
  /** Puts the run's first process in (before it runs the command); false when it could not. */
  adopt(pid: number): boolean;
  /** Kills every process of the run; resolves once none is left (or after `timeoutMs`). */
  killAll(timeoutMs?: number): Promise<void>;
  /** Pids of the run's processes alive now. */
  pids(): number[];
}

/** The cgroup v2 folder this process lives in, when it can make child cgroups there. */
function ownCgroupDir(): string | undefined {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
    if (!line) return undefined;
    const mount = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[f.indexOf('-') + 1] === 'cgroup2')?.[4];
    if (!mount) return undefined;
    const dir = join(mount, line.slice(3).trim());
    return existsSync(join(dir, 'cgroup.procs')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

let cgroupProbe: string | null | undefined;

/** Where run cgroups go, or null when this host does not allow them (probed once). */
function cgroupRoot(): string | null {
  if (cgroupProbe !== undefined) return cgroupProbe;
  cgroupProbe = null;
  const own = ownCgroupDir();
  if (!own) return null;
  const probe = join(own, `outpost-probe-${process.pid}-${randomBytes(3).toString('hex')}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    cgroupProbe = own;
  } catch {
    // read-only, or not delegated to us
  }
  return cgroupProbe;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function signalAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** Pids of processes whose environment carries `marker` (readable ones: ours, or all as root). */
export function pidsWithMarker(marker: string): number[] {
  const needle = `${RUN_MARKER_VARIABLE}=${marker}\0`;
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (`${readFileSync(`/proc/${name}/environ`, 'latin1')}\0`.includes(needle)) out.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

class CgroupContainment implements Containment {
  readonly kind = 'cgroup' as const;
  readonly env: Record<string, string>;
  readonly record: ContainmentRecord;
  readonly #dir: string;
  readonly #fallback: TrackingContainment;
  #adopted = false;

  constructor(root: string, fallback: TrackingContainment) {
    this.#dir = join(root, `outpost-run-${randomBytes(6).toString('hex')}`);
    mkdirSync(this.#dir);
    this.#fallback = fallback;
    this.env = fallback.env;
    this.record = { ...fallback.record, cgroup: this.#dir };
  }

  adopt(pid: number): boolean {
    try {
      writeFileSync(join(this.#dir, 'cgroup.procs'), String(pid));
      this.#adopted = true;
      return true;
    } catch {
      return false;
    }
  }

  pids(): number[] {
    if (!this.#adopted) return this.#fallback.pids();
    try {
      return readFileSync(join(this.#dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  async killAll(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const kill = join(this.#dir, 'cgroup.kill');
    while (this.#adopted && existsSync(this.#dir)) {
      try {
        // cgroup.kill (Linux 5.14+) ends every member at once, forks in flight included.
        if (existsSync(kill)) writeFileSync(kill, '1');
        else signalAll(this.pids());
      } catch {
        // removed meanwhile by another sweep
      }
      if (this.pids().length === 0 || Date.now() > deadline) break;
      await sleep(20);
    }
    await this.#fallback.killAll(Math.max(0, deadline - Date.now()));
    while (existsSync(this.#dir)) {
      try {
        rmdirSync(this.#dir);
      } catch {
        // members still being reaped
        if (Date.now() > deadline) return;
        await sleep(20);
      }
    }
  }
}

class TrackingContainment implements Containment {
  readonly kind = 'tracking' as const;
  readonly env: Record<string, string>;
  readonly record: ContainmentRecord;
  readonly #marker: string;

  constructor(marker = randomBytes(12).toString('hex')) {
    this.#marker = marker;
    this.env = { [RUN_MARKER_VARIABLE]: this.#marker };
    this.record = { marker };
  }

  adopt(): boolean {
    return true;
  }

  pids(): number[] {
    return pidsWithMarker(this.#marker);
  }

  async killAll(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    // Rounds until none is left: a process may fork between the scan and the kill.
    for (;;) {
      const pids = this.pids();
      if (pids.length === 0 || Date.now() > deadline) return;
      signalAll(pids);
      await sleep(20);
    }
  }
}

/**
 * A containment for one run: a cgroup where the host allows it, else environment tracking.
 * `OUTPOST_JOB_CONTAINMENT=tracking` asks for tracking (hosts whose cgroups misbehave; tests).
 */
export function containRun(prefer: ContainmentKind | 'auto' = (process.env.OUTPOST_JOB_CONTAINMENT as ContainmentKind | undefined) ?? 'auto'): Containment {
  const tracking = new TrackingContainment();
  if (prefer === 'tracking' || process.platform !== 'linux') return tracking;
  const root = cgroupRoot();
  if (!root) return tracking;
  try {
    return new CgroupContainment(root, tracking);
  } catch {
    return tracking;
  }
}

/**
 * Ends every process of a run recorded by a previous life of this program (killed before it
 * could end them), by its cgroup and its marker.
 */
export async function endRecordedRun(record: ContainmentRecord): Promise<number> {
  const found = new Set(pidsWithMarker(record.marker));
  if (record.cgroup && /\/outpost-run-[0-9a-f]+$/.test(record.cgroup) && existsSync(record.cgroup)) {
    try {
      for (const pid of readFileSync(join(record.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) found.add(Number(pid));
      if (existsSync(join(record.cgroup, 'cgroup.kill'))) writeFileSync(join(record.cgroup, 'cgroup.kill'), '1');
    } catch {
      // gone meanwhile
    }
  }
  signalAll([...found]);
  await new TrackingContainment(record.marker).killAll(2000);
  for (let i = 0; record.cgroup && existsSync(record.cgroup) && i < 100; i++) {
    try {
      rmdirSync(record.cgroup);
    } catch {
      await sleep(20);
    }
  }
  return found.size;
}
