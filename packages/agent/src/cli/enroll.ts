// outpost-agent enroll --relay URL --token TOKEN

import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { OutpostError, examples, formatLabels, notAnEnrollToken, parseLabelsOption, relayUrl, type Labels } from '@outpost/shared';
import { defaultAgentDir } from '../device-file.js';
import { enroll } from '../enroll.js';

function parseRelayUrl(value: string): string {
  try {
    return relayUrl(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function enrollCommand(program: Command): void {
  program
    .command('enroll')
    .description('enroll this device with a relay, using a one-time token from `outpost-relay tokens enroll`')
    .requiredOption('--relay <url>', 'the relay\'s URL, e.g. https://relay.local:8080 (host:port means https://host:port; http:// for a relay run with --insecure)', parseRelayUrl)
    .requiredOption('--token <token>', 'the one-time enrollment token (ope_…; it carries the relay CA\'s fingerprint, checked before anything is sent)')
    .option('--name <name>', 'a name for this device (default: its id)')
    .option('--labels <k=v,...>', 'labels to ask for, when the token allows it (tokens enroll --allow-device-labels); the token\'s labels win', parseLabelsOption)
    .option('--data-dir <dir>', 'where device.json and the model cache live (env OUTPOST_AGENT_DIR)', defaultAgentDir())
    .option('--force', 'enroll again even if this data dir holds an identity')
    .option('--json', 'print the result as JSON (without the secret)')
    .addHelpText(
      'after',
      examples(
        'outpost-agent enroll --relay https://relay.local:8080 --token ope_…',
        'outpost-agent enroll --relay 10.0.0.5:8080 --token ope_… --name cam-01',
        'sudo -u outpost outpost-agent enroll --data-dir /var/lib/outpost-agent --relay https://relay.local:8080 --token ope_…',
      ),
    )
    .action(async (opts: { relay: string; token: string; name?: string; labels?: Labels; dataDir: string; force?: boolean; json?: boolean }) => {
      // Said before anything is sent: an API token or a device secret is never an enrollment token.
      const wrongKind = notAnEnrollToken(opts.token);
      if (wrongKind) throw new OutpostError('OUTPOST_ERR_ENROLL_TOKEN_INVALID', wrongKind);
      const r = await enroll({ relayUrl: opts.relay, token: opts.token, dataDir: opts.dataDir, name: opts.name, labels: opts.labels, force: opts.force });
      if (opts.json) {
        process.stdout.write(JSON.stringify({ deviceId: r.deviceId, name: r.name, labels: r.labels, relayUrl: r.relayUrl, mqttUrl: r.mqttUrl, file: r.file, certificateExpiresAt: r.certificateExpiresAt ?? null }, null, 2) + '\n');
        return;
      }
      process.stdout.write(`enrolled as ${r.deviceId} (${r.name})${Object.keys(r.labels).length ? ` with labels ${formatLabels(r.labels)}` : ''}\n`);
      if (r.certificateExpiresAt) process.stdout.write(`relay verified against the token's CA fingerprint; device certificate until ${r.certificateExpiresAt} (renewed by the agent)\n`);
      else process.stderr.write('warning: the relay runs without TLS (--insecure): this device\'s secret and models cross the network in plaintext\n');
      process.stdout.write(`identity saved to ${r.file} (mode 0600); start serving with: outpost-agent start${opts.dataDir === defaultAgentDir() ? '' : ` --data-dir ${opts.dataDir}`}\n`);
    });
}
