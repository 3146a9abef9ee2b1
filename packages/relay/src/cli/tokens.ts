// outpost-relay tokens enroll: a one-time token a device enrolls with.

import type { Command } from 'commander';
import { durationOption, examples, parseLabelsOption, type Labels } from '@outpost/shared';
import { relayApi, type ClientOptions } from './client.js';
import { clientOptions } from './options.js';
import { note, print, printJson } from './output.js';
import { parseDurationOption } from './parse.js';

export function tokensCommand(program: Command): void {
  const tokens = program
    .command('tokens')
    .description('make enrollment tokens for new devices')
    .addHelpText('after', examples('outpost-relay tokens enroll --labels site=lab --ttl 1h'));
  clientOptions(
    tokens
      .command('enroll')
      .description('print a one-time enrollment token (single use, expires after --ttl)')
      .option('--labels <k=v,...>', 'labels the enrolled device gets', parseLabelsOption)
      .addOption(durationOption('--ttl <duration>', 'how long the token stays valid (e.g. 15m, 2h, 7d)', parseDurationOption, 15 * 60_000))
      .option('--allow-device-labels', 'let the enrolling device add labels of its own (outpost-agent enroll --labels); the token\'s labels still win')
      .addHelpText('after', `
Labels decide which selector deployments and jobs reach a device, so by default only the
token's labels count and a device that asks for labels of its own is refused.

Examples:
  outpost-relay tokens enroll --labels site=lab --ttl 1h
  outpost-relay tokens enroll --labels site=lab --allow-device-labels   # the device may add e.g. camera=front
`),
  ).action(async (opts: ClientOptions & { labels?: Labels; ttl: number; allowDeviceLabels?: boolean }) => {
    const api = relayApi(opts);
    const res = await api.request<{ token: string; caFingerprint?: string; expiresAt: string; labels: Labels; allowDeviceLabels: boolean }>('POST', '/v1/tokens/enroll', {
      ttlSeconds: opts.ttl / 1000,
      labels: opts.labels ?? {},
      allowDeviceLabels: opts.allowDeviceLabels ?? false,
    });
    if (opts.json) return printJson(res);
    print(res.token);
    const trust = res.caFingerprint ? ` (it carries the relay CA's fingerprint ${res.caFingerprint.slice(0, 8)}…: the device checks the relay against it)` : ' (the relay runs with --insecure: the device cannot check it is talking to this relay)';
    note(`expires ${res.expiresAt}${trust}; on the device: outpost-agent enroll --relay ${api.url} --token ${res.token.slice(0, 8)}…`);
  });
}
