// outpost-agent install --systemd: a service unit that runs `start` as its own user and
// restarts it on failure, with the filesystem read-only except for the agent's data dir.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { examples } from '@outpost/shared';

export interface UnitOptions {
  user: string;
  dataDir: string;
  nodePath: string;
  mainPath: string;
  port: number;
  extraArgs: string[];
}

/** systemd quoting: wrap in double quotes when a value has spaces or specials. */
function quote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * V8 flags for the agent's process, to keep an idle device's RSS down: a small young
 * generation, and optimizing compiles on the main thread. A background compile thread keeps
 * its freed scratch memory in its own malloc arena: 1-7 MiB of an idle agent's RSS, varying
 * run to run. Measured side by side, the flag cost no throughput or latency (the hot code is
 * optimized once, at warm-up); see docs/benchmarks.md.
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--no-concurrent-recompilation'];

export function renderUnit(o: UnitOptions): string {
  const exec = [o.nodePath, ...AGENT_NODE_FLAGS, o.mainPath, 'start', '--data-dir', o.dataDir, '--port', String(o.port), ...o.extraArgs].map(quote).join(' ');
  return `[Unit]
Description=Outpost agent (serves ML models for the Outpost relay)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=${o.user}
Group=${o.user}
ExecStart=${exec}
Restart=on-failure
RestartSec=5
Environment=NODE_ENV=production
# Logs are pino JSON lines on stdout: journalctl -u outpost-agent -o cat
StateDirectory=${o.dataDir.startsWith('/var/lib/') ? o.dataDir.slice('/var/lib/'.length) : 'outpost-agent'}
ReadWritePaths=${o.dataDir}
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
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

export function installCommand(program: Command): void {
  program
    .command('install')
    .description('install the agent as a service')
    .requiredOption('--systemd', 'write a systemd unit (the only service manager supported so far)')
    .option('--dry-run', 'print the unit instead of writing it')
    .option('--user <user>', 'system user the agent runs as', 'outpost')
    .option('--data-dir <dir>', 'the agent\'s data dir', '/var/lib/outpost-agent')
    .option('--port <port>', 'inference API port', '8000')
    .option('--unit-path <file>', 'where to write the unit', '/etc/systemd/system/outpost-agent.service')
    .addHelpText('after', examples('outpost-agent install --systemd --dry-run', 'outpost-agent install --systemd --user edge'))
    .action((opts: { dryRun?: boolean; user: string; dataDir: string; port: string; unitPath: string }) => {
      const unit = renderUnit({
        user: opts.user,
        dataDir: opts.dataDir,
        nodePath: process.execPath,
        mainPath: fileURLToPath(new URL('./main.js', import.meta.url)),
        port: Number(opts.port),
        extraArgs: [],
      });
      if (opts.dryRun) {
        process.stdout.write(unit);
        return;
      }
      writeFileSync(opts.unitPath, unit, { mode: 0o644 });
      process.stdout.write(
        `wrote ${opts.unitPath}\nnext, as root:\n` +
          `  useradd --system --home ${opts.dataDir} --shell /usr/sbin/nologin ${opts.user}\n` +
          `  install -d -o ${opts.user} -g ${opts.user} -m 0700 ${opts.dataDir}\n` +
          `  sudo -u ${opts.user} outpost-agent enroll --data-dir ${opts.dataDir} --relay URL --token TOKEN\n` +
          `  systemctl daemon-reload && systemctl enable --now outpost-agent\n`,
      );
    });
}
