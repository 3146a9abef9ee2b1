// outpost-agent status: this device's identity, and what the running agent serves.

import type { Command } from 'commander';
import { examples } from '@outpost/shared';
import { readStateFile } from '../state-file.js';
import { defaultAgentDir, readDeviceFile } from '../device-file.js';
import { DeviceTls } from '../device-tls.js';
import { X509Certificate } from 'node:crypto';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function statusCommand(program: Command): void {
  program
    .command('status')
    .description('show this device\'s identity and what the agent serves; exit 1 when it is not running')
    .option('--data-dir <dir>', 'the agent\'s data dir (env OUTPOST_AGENT_DIR)', defaultAgentDir())
    .option('--json', 'print JSON')
    .addHelpText('after', examples('outpost-agent status', 'outpost-agent status --data-dir /var/lib/outpost-agent --json'))
    .action(async (opts: { dataDir: string; json?: boolean }) => {
      const device = readDeviceFile(opts.dataDir);
      const state = readStateFile(opts.dataDir);
      const running = state !== undefined && alive(state.pid);
      const tls = DeviceTls.read(opts.dataDir);
      const cert = tls?.cert ? new X509Certificate(tls.cert) : undefined;
      const result = {
        deviceId: device.deviceId,
        name: device.name,
        relayUrl: device.relayUrl,
        mqttUrl: device.mqttUrl,
        certificateExpiresAt: cert ? new Date(cert.validTo).toISOString() : null,
        running,
        connected: running ? state.connected : false,
        httpUrl: running ? state.httpUrl : null,
        models: running ? state.models : [],
      };
      if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      else {
        const lines = [
          `device     ${result.deviceId} (${result.name})`,
          `relay      ${result.relayUrl} (mqtt ${result.mqttUrl})`,
          `identity   ${cert ? `certificate until ${result.certificateExpiresAt} (renewed by the agent)` : tls ? 'the relay CA, no certificate: enroll again' : 'secret only: the relay runs without TLS (--insecure)'}`,
          `agent      ${running ? `running, pid ${state.pid}, ${state.connected ? 'connected' : 'not connected'} to the relay` : 'not running (outpost-agent start)'}`,
        ];
        if (running) {
          lines.push(`inference  ${state.httpUrl}/v2`);
          lines.push('models');
          if (state.models.length === 0) lines.push('  (none deployed)');
          for (const m of state.models) {
            const serving = m.serving && m.serving.version !== m.version ? ` (serving v${m.serving.version})` : '';
            lines.push(`  ${m.name}:${m.version} ${m.state}${serving}${m.reason ? `: ${m.reason}` : ''}`);
          }
        }
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (!running) process.exitCode = 1;
    });
}
