// outpost-agent install --systemd: a service unit that runs `start` as its own user and
// restarts it on failure, with the filesystem read-only except for the agent's data dir.
// The inference token never goes on the command line (every user sees it in `ps`): it stays
// in a root-only file that systemd hands to the service (LoadCredential).

import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { OutpostError, collectDataset, examples, parsePort } from '@outpost/shared';
import { collectAccelerator, parseGrpcPort } from './start.js';

export interface UnitOptions {
  user: string;
  dataDir: string;
  nodePath: string;
  mainPath: string;
  port: number;
  /** `start --accept-training`: the relay may run training jobs here. */
  acceptTraining?: boolean;
  /** `start --dataset NAME=PATH` for each. */
  datasets?: Record<string, string>;
  /** A root-only file with the inference API's bearer token, handed to the service by systemd. */
  tokenFile?: string;
  extraArgs?: string[];
}

/** Where `install` keeps the inference token it is given in OUTPOST_AGENT_TOKEN. */
export const DEFAULT_TOKEN_FILE = '/etc/outpost-agent/inference.token';

/** The name the token has in the service's credentials directory. */
const TOKEN_CREDENTIAL = 'inference-token';

/**
 * One word of a unit file line: `%` and `$` doubled (else systemd expands them as specifiers
 * and variables), and double quotes around a word with spaces or other specials.
 */
export function unitWord(arg: string): string {
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_./:=@%$+-]+$/.test(escaped) ? escaped : `"${escaped.replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * V8 flags for the agent's process, to keep an idle device's RSS down: a small young
 * generation, and optimizing compiles on the main thread. A background compile thread keeps
 * its freed scratch memory in its own malloc arena: 1-7 MiB of an idle agent's RSS, varying
 * run to run. Measured side by side, the flag cost no throughput or latency (the hot code is
 * optimized once, at warm-up); see docs/benchmarks.md.
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--no-concurrent-recompilation'];

/** Folders ProtectHome= hides from the service unless it is relaxed to read-only. */
const HOME_DIRS = /^\/(home|root|run\/user)(\/|$)/;

/** StateDirectory= is relative to /var/lib and space-separated: a data dir elsewhere, or with odd characters, gets the default. */
function stateDirectory(dataDir: string): string {
  const below = dataDir.startsWith('/var/lib/') ? dataDir.slice('/var/lib/'.length) : '';
  return /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(below) ? below : 'outpost-agent';
}

export function renderUnit(o: UnitOptions): string {
  const args = [o.nodePath, ...AGENT_NODE_FLAGS, o.mainPath, 'start', '--data-dir', o.dataDir, '--port', String(o.port)];
  if (o.acceptTraining) args.push('--accept-training');
  for (const [name, path] of Object.entries(o.datasets ?? {})) args.push('--dataset', `${name}=${path}`);
  args.push(...(o.extraArgs ?? []));
  let exec = args.map(unitWord).join(' ');
  // systemd expands this variable itself: it is the one word not escaped.
  if (o.tokenFile) exec += ` --token-file \${CREDENTIALS_DIRECTORY}/${TOKEN_CREDENTIAL}`;
  const datasetInHome = Object.values(o.datasets ?? {}).some((p) => HOME_DIRS.test(p));
  return `[Unit]
Description=Outpost agent (serves ML models for the Outpost relay)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=${o.user}
Group=${o.user}
${o.tokenFile ? `# The inference token: systemd reads this root-only file and gives the service a private copy.\nLoadCredential=${TOKEN_CREDENTIAL}:${unitWord(o.tokenFile)}\n` : ''}ExecStart=${exec}
Restart=on-failure
RestartSec=5
Environment=NODE_ENV=production
# Logs are pino JSON lines on stdout: journalctl -u outpost-agent -o cat
StateDirectory=${stateDirectory(o.dataDir)}
ReadWritePaths=${unitWord(o.dataDir)}
NoNewPrivileges=true
ProtectSystem=strict
${datasetInHome ? '# A dataset lives under a home folder: jobs may read it (and nothing else there is writable).\nProtectHome=read-only' : 'ProtectHome=true'}
PrivateTmp=true
ProtectKernelTunables=true
# The agent puts each training job in a cgroup of its own, so that every process a job starts
# ends with it; that needs its subtree delegated and the cgroup tree writable there.
Delegate=yes
RestrictSUIDSGID=true

[Install]
WantedBy=multi-user.target
`;
}

/** A dataset the service cannot see fails every job that asks for it: said at install. */
function checkDatasets(datasets: Record<string, string>): void {
  for (const [name, path] of Object.entries(datasets)) {
    if (/^\/(tmp|var\/tmp)(\/|$)/.test(path)) {
      process.stderr.write(`warning: --dataset ${name}=${path}: the service has a private /tmp (PrivateTmp=true) and will not see it; move the data elsewhere, e.g. /srv/${name}\n`);
    }
  }
}

/**
 * The token file for the unit: written from OUTPOST_AGENT_TOKEN (mode 0600), or one that
 * exists already. Undefined when there is neither: the inference API is then open.
 */
function tokenFileFor(opts: { tokenFile?: string; dryRun?: boolean }): string | undefined {
  const token = process.env.OUTPOST_AGENT_TOKEN?.trim();
  const file = resolve(opts.tokenFile ?? DEFAULT_TOKEN_FILE);
  if (token) {
    if (opts.dryRun) {
      process.stderr.write(`(dry run) would write the inference token from OUTPOST_AGENT_TOKEN to ${file} (mode 0600)\n`);
      return file;
    }
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    chmodSync(file, 0o600); // an existing file keeps its mode through writeFileSync
    return file;
  }
  if (!opts.tokenFile) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `cannot read --token-file ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): write the token there (mode 0600), or set OUTPOST_AGENT_TOKEN and install writes it`);
  }
  if (!text) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--token-file ${file} is empty: write the token there, or set OUTPOST_AGENT_TOKEN and install writes it`);
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) process.stderr.write(`warning: ${file} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 ${file}\n`);
  return file;
}

export function installCommand(program: Command): void {
  program
    .command('install')
    .description('install the agent as a service')
    .requiredOption('--systemd', 'write a systemd unit (the only service manager supported so far)')
    .option('--dry-run', 'print the unit instead of writing it')
    .option('--user <user>', 'system user the agent runs as', 'outpost')
    .option('--data-dir <dir>', 'the agent\'s data dir', '/var/lib/outpost-agent')
    .option('--port <port>', 'inference API port', parsePort, 8000)
    .option('--grpc-port <port>', 'KServe v2 gRPC port ("off": none)', parseGrpcPort, 8001)
    .option('--accelerator <name>', 'an accelerator detection misses, as start --accelerator (repeat for several)', collectAccelerator)
    .option('--accept-training', 'the service runs with --accept-training: the relay may run training jobs here')
    .option('--dataset <name=path>', 'the service offers this local dataset to jobs (repeat for several)', collectDataset)
    .option('--token-file <file>', `the inference API's bearer token: a root-only file systemd hands to the service; with OUTPOST_AGENT_TOKEN set, install writes it (default ${DEFAULT_TOKEN_FILE})`)
    .option('--unit-path <file>', 'where to write the unit', '/etc/systemd/system/outpost-agent.service')
    .addHelpText(
      'after',
      examples(
        'outpost-agent install --systemd --dry-run',
        'outpost-agent install --systemd --accept-training --dataset images=/srv/images',
        `OUTPOST_AGENT_TOKEN=… outpost-agent install --systemd     # the token goes to ${DEFAULT_TOKEN_FILE}, 0600`,
        'outpost-agent install --systemd --token-file /etc/outpost-agent/inference.token',
        'outpost-agent install --systemd --grpc-port off --accelerator npu   # no gRPC port; an NPU detection cannot see',
      ),
    )
    .action((opts: { dryRun?: boolean; user: string; dataDir: string; port: number; unitPath: string; acceptTraining?: boolean; dataset?: Record<string, string>; tokenFile?: string; grpcPort: number | 'off'; accelerator?: string[] }) => {
      checkDatasets(opts.dataset ?? {});
      const tokenFile = tokenFileFor(opts);
      const unit = renderUnit({
        user: opts.user,
        dataDir: opts.dataDir,
        nodePath: process.execPath,
        mainPath: fileURLToPath(new URL('./main.js', import.meta.url)),
        port: opts.port,
        acceptTraining: opts.acceptTraining,
        datasets: opts.dataset ?? {},
        tokenFile,
        // start's defaults are left out, so a unit shows only what was chosen
        extraArgs: [...(opts.grpcPort !== 8001 ? ['--grpc-port', String(opts.grpcPort)] : []), ...(opts.accelerator ?? []).flatMap((a) => ['--accelerator', a])],
      });
      if (opts.dryRun) {
        process.stdout.write(unit);
        return;
      }
      writeFileSync(opts.unitPath, unit, { mode: 0o644 });
      process.stdout.write(
        `wrote ${opts.unitPath}${tokenFile ? ` (the inference token is read from ${tokenFile})` : ''}\nnext, as root:\n` +
          `  useradd --system --home ${opts.dataDir} --shell /usr/sbin/nologin ${opts.user}\n` +
          `  install -d -o ${opts.user} -g ${opts.user} -m 0700 ${opts.dataDir}\n` +
          `  sudo -u ${opts.user} outpost-agent enroll --data-dir ${opts.dataDir} --relay URL --token TOKEN\n` +
          `  systemctl daemon-reload && systemctl enable --now outpost-agent\n`,
      );
    });
}
