#!/usr/bin/env node
// outpost-relay: run the relay, and manage a running one.

import { Command, CommanderError } from 'commander';
import { OutpostError } from '@outpost/shared';
import { RELAY_VERSION } from '../version.js';
import { startCommand } from './start.js';
import { tokensCommand } from './tokens.js';
import { devicesCommand } from './devices.js';
import { modelsCommand } from './models.js';
import { deployCommand } from './deploy.js';
import { deploymentsCommand } from './deployments.js';
import { fleetCommand } from './fleet-watch.js';
import { targetsCommand } from './targets.js';
import { jobsCommand } from './jobs.js';
import { CliError } from './output.js';

const program = new Command('outpost-relay')
  .description('Outpost relay: the workspace that tracks devices, stores models and deploys them')
  .version(RELAY_VERSION)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

startCommand(program);
tokensCommand(program);
devicesCommand(program);
modelsCommand(program);
deployCommand(program);
deploymentsCommand(program);
targetsCommand(program);
jobsCommand(program);
fleetCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const message = err instanceof CliError ? err.message : err instanceof OutpostError ? `${err.code}: ${err.message}` : `${(err as Error).message}`;
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}
