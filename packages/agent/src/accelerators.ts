// What this device can compute on: accelerators (hardware, found under a root directory or
// declared by the operator) and the onnxruntime execution providers usable here. An execution
// provider counts as usable only when onnxruntime-node has it (bundled, or its provider library
// installed beside the binding) and the hardware it needs is there; every other one onnxruntime
// knows is reported unavailable, with the reason. Sessions still fall back (providerOrder) when
// a provider that looked usable fails to create one.

import { readdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { execFile } from 'node:child_process';
import { ACCELERATOR_PATTERN, EXECUTION_PROVIDER_PATTERN, MAX_ACCELERATORS } from '@outpost/shared';

/** One entry of onnxruntime-node's listSupportedBackends(). */
export interface BackendInfo {
  name: string;
  bundled: boolean;
}

export interface AcceleratorReport {
  /** Sorted, at most MAX_ACCELERATORS: found ones and declared ones. */
  accelerators: string[];
  /** Usable execution providers, `cpu` first. */
  executionProviders: string[];
  /** Execution providers onnxruntime knows but this device cannot use, with why. */
  unavailable: Array<{ name: string; reason: string }>;
  /** The files that showed each found accelerator (for the log). */
  evidence: string[];
}

const ACCELERATOR = new RegExp(ACCELERATOR_PATTERN);

/** Checks an `--accelerator NAME` value. */
export function checkAcceleratorName(name: string): string {
  if (!ACCELERATOR.test(name)) throw new Error(`invalid accelerator "${name}": use lower-case letters, digits, '_' and '-', starting with a letter (at most 32), e.g. cuda`);
  return name;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/**
 * Accelerators seen under `root` (`/` on a device; a temp dir in tests):
 * `cuda` and `gpu` for an NVIDIA GPU (/dev/nvidia0… or /dev/nvidiactl), `tegra`, `cuda` and `gpu`
 * for a Jetson (/etc/nv_tegra_release), `gpu` for a DRM render node (/dev/dri/renderD*).
 */
export async function detectDevice(root = '/'): Promise<{ accelerators: string[]; evidence: string[] }> {
  const found = new Set<string>();
  const evidence: string[] = [];
  const dev = await list(join(root, 'dev'));
  const nvidia = dev.filter((f) => /^nvidia(\d+|ctl)$/.test(f)).sort();
  if (nvidia.length) {
    found.add('cuda').add('gpu');
    evidence.push(...nvidia.map((f) => `/dev/${f}`));
  }
  if (await exists(join(root, 'etc', 'nv_tegra_release'))) {
    found.add('tegra').add('cuda').add('gpu');
    evidence.push('/etc/nv_tegra_release');
  }
  const render = (await list(join(root, 'dev', 'dri'))).filter((f) => f.startsWith('renderD')).sort();
  if (render.length) {
    found.add('gpu');
    evidence.push(...render.map((f) => `/dev/dri/${f}`));
  }
  return { accelerators: [...found].sort(), evidence };
}

/** The directory of onnxruntime-node's binding on this platform, where provider libraries go. */
export function bindingDir(): string | null {
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return null;
  }
}

/** The hardware an execution provider needs, as an accelerator name. */
const NEEDS: Record<string, string> = { cuda: 'cuda', tensorrt: 'cuda', webgpu: 'gpu', dml: 'gpu' };

/**
 * Which of onnxruntime's backends this device can use (pure: the tests give it the backends,
 * the accelerators and whether a provider library is installed).
 */
export function usableProviders(backends: readonly BackendInfo[], accelerators: readonly string[], libraryInstalled: (name: string) => boolean): Pick<AcceleratorReport, 'executionProviders' | 'unavailable'> {
  const usable = ['cpu'];
  const unavailable: AcceleratorReport['unavailable'] = [];
  const named = new RegExp(EXECUTION_PROVIDER_PATTERN);
  for (const b of backends) {
    // A name the relay's schema would refuse (a later onnxruntime's) would cost the whole status message.
    if (!named.test(b.name)) {
      unavailable.push({ name: b.name.slice(0, 64), reason: 'a name Outpost cannot report (lower case letters, digits and _, up to 32)' });
      continue;
    }
    if (b.name === 'cpu' || usable.includes(b.name) || unavailable.some((u) => u.name === b.name)) continue;
    const needs = NEEDS[b.name];
    const why: string[] = [];
    if (!b.bundled && !libraryInstalled(b.name)) why.push(`its provider library (libonnxruntime_providers_${b.name}) is not installed`);
    if (needs && !accelerators.includes(needs)) why.push(needs === 'cuda' ? 'the device has no NVIDIA GPU (/dev/nvidia0, /dev/nvidiactl or a Jetson)' : 'the device has no GPU (/dev/dri/renderD*, /dev/nvidia*)');
    if (why.length) unavailable.push({ name: b.name, reason: why.join('; and ') });
    else usable.push(b.name);
  }
  return { executionProviders: usable.slice(0, MAX_ACCELERATORS), unavailable };
}

/**
 * The providers to try, in order, for a deployment's list: each once, then `cpu` (the fallback)
 * even when the deployment did not name it. `cpu` named earlier stays where it is.
 */
export function providerOrder(requested: readonly string[] | undefined): string[] {
  const order = [...new Set(requested ?? [])];
  if (!order.includes('cpu')) order.push('cpu');
  return order;
}

/**
 * onnxruntime-node's backends, asked of a short-lived child process: loading onnxruntime, even
 * in a thread that then exits, leaves its library and the thread's malloc arena in the agent
 * for good (+7 MiB of an idle agent's RSS, measured); a child costs ~0.1 s of CPU once, at
 * start. On any failure: just `cpu`.
 */
export async function listBackends(timeoutMs = 30_000): Promise<BackendInfo[]> {
  const cpuOnly: BackendInfo[] = [{ name: 'cpu', bundled: true }];
  let binding: string;
  try {
    binding = createRequire(import.meta.url).resolve('onnxruntime-node');
  } catch {
    return cpuOnly;
  }
  const code = `process.stdout.write(JSON.stringify(require(${JSON.stringify(binding)}).listSupportedBackends()))`;
  return new Promise((resolve) => {
    execFile(process.execPath, ['-e', code], { timeout: timeoutMs, maxBuffer: 64 * 1024, env: probeEnv() }, (err, stdout) => {
      if (err) return resolve(cpuOnly);
      try {
        const list = JSON.parse(stdout) as unknown;
        resolve(Array.isArray(list) ? (list as BackendInfo[]).filter((b) => typeof b?.name === 'string') : cpuOnly);
      } catch {
        resolve(cpuOnly);
      }
    });
  });
}

/**
 * The probe's environment: what the loader needs to find onnxruntime's libraries, nothing of the
 * agent's own (its inference token may be in OUTPOST_AGENT_TOKEN; NODE_OPTIONS could load code).
 */
function probeEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'LD_LIBRARY_PATH']) if (process.env[key] !== undefined) env[key] = process.env[key];
  return env;
}

export interface DetectOptions {
  /** Where /dev and /etc are (default `/`). */
  root?: string;
  /** `--accelerator NAME`: what detection misses. */
  declared?: readonly string[];
  /** onnxruntime's backends (default: asked of onnxruntime-node). */
  backends?: readonly BackendInfo[];
  /** Where provider libraries are installed (default: beside onnxruntime-node's binding). */
  libraryDir?: string | null;
}

export async function detectAccelerators(o: DetectOptions = {}): Promise<AcceleratorReport> {
  const device = await detectDevice(o.root ?? '/');
  const accelerators = [...new Set([...device.accelerators, ...(o.declared ?? []).map(checkAcceleratorName)])].sort().slice(0, MAX_ACCELERATORS);
  const backends = o.backends ?? (await listBackends());
  const dir = o.libraryDir === undefined ? bindingDir() : o.libraryDir;
  const ext = process.platform === 'win32' ? 'dll' : process.platform === 'darwin' ? 'dylib' : 'so';
  const installed = (name: string) => dir !== null && existsSync(join(dir, `${process.platform === 'win32' ? '' : 'lib'}onnxruntime_providers_${name}.${ext}`));
  return { accelerators, ...usableProviders(backends, accelerators, installed), evidence: device.evidence };
}
