// outpost-relay whoami: the token this CLI uses, its name and role.

import type { Command } from 'commander';
import { examples } from '@outpost/shared';
import { relayApi, type ClientOptions } from './client.js';
import { clientOptions } from './options.js';
import { print, printJson } from './output.js';
import { shortTime } from './tokens.js';

export function whoamiCommand(program: Command): void {
  clientOptions(
    program
      .command('whoami')
      .description('say which token this CLI uses: its name, role and expiry')
      .addHelpText('after', examples('outpost-relay whoami', 'OUTPOST_TOKEN=opa_… outpost-relay whoami --json')),
  ).action(async (opts: ClientOptions) => {
    const me = await relayApi(opts).request<{ kind: string; id: string; name: string; role: string; expiresAt: string | null }>('GET', '/v1/whoami');
    if (opts.json) return printJson(me);
    print(`token ${me.name} (${me.id}), role ${me.role}, ${me.expiresAt ? `expires ${shortTime(me.expiresAt)}` : 'does not expire'}`);
  });
}
