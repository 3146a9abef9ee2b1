// The outpost-agent command tree, apart from main.ts so that tests and the completion script
// can walk it without running it.

import { Command } from 'commander';
import { completionCommand, examples } from '@outpost/shared';
import { AGENT_VERSION } from '../version.js';
import { enrollCommand } from './enroll.js';
import { startCommand } from './start.js';
import { statusCommand } from './status.js';
import { installCommand } from './install.js';

export function agentProgram(): Command {
  const program = new Command('outpost-agent')
    .description('Outpost agent: serves the ML models an Outpost relay deploys to this device')
    .version(AGENT_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      examples(
        'outpost-agent enroll --relay http://relay.local:8080 --token ope_…',
        'outpost-agent start',
        'outpost-agent status',
        'outpost-agent install --systemd --dry-run',
      ),
    );
  enrollCommand(program);
  startCommand(program);
  statusCommand(program);
  installCommand(program);
  completionCommand(program);
  return program;
}
