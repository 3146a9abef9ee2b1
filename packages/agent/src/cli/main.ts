#!/usr/bin/env node
// outpost-agent: enroll this device, and serve the models its relay deploys to it.

import { Command, CommanderError } from 'commander';
import { OutpostError } from '@outpost/shared';
import { AGENT_VERSION } from '../version.js';
import { enrollCommand } from './enroll.js';
import { startCommand } from './start.js';
import { statusCommand } from './status.js';
import { installCommand } from './install.js';

const program = new Command('outpost-agent')
  .description('Outpost agent: serves the ML models an Outpost relay deploys to this device')
  .version(AGENT_VERSION)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

enrollCommand(program);
startCommand(program);
statusCommand(program);
installCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const message = err instanceof OutpostError ? `${err.code}: ${err.message}` : (err as Error).message;
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}
