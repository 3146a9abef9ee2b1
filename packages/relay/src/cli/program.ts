// The outpost-relay command tree, apart from main.ts so that tests and the completion script
// can walk it without running it.

import { Command } from 'commander';
import { completionCommand, examples } from '@outpost/shared';
import { RELAY_VERSION } from '../version.js';
import { startCommand } from './start.js';
import { caCommand } from './ca.js';
import { storeCommand } from './store.js';
import { brokerCommand } from './broker.js';
import { tokensCommand } from './tokens.js';
import { devicesCommand } from './devices.js';
import { modelsCommand } from './models.js';
import { deployCommand } from './deploy.js';
import { deploymentsCommand } from './deployments.js';
import { fleetCommand } from './fleet-watch.js';
import { targetsCommand } from './targets.js';
import { jobsCommand } from './jobs.js';
import { auditCommand } from './audit.js';
import { whoamiCommand } from './whoami.js';

export function relayProgram(): Command {
  const program = new Command('outpost-relay')
    .description('Outpost relay: the workspace that tracks devices, stores models and deploys them')
    .version(RELAY_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      examples(
        'outpost-relay start --data-dir ~/.outpost/relay',
        'outpost-relay tokens enroll --labels site=lab',
        'outpost-relay tokens create --name ci-bot --role deployer',
        'outpost-relay models push model.onnx --name detector',
        'outpost-relay deploy detector --selector site=lab --wait',
        'outpost-relay store migrate --to postgres://outpost@db:5432/outpost   # a stopped relay onto PostgreSQL',
        'outpost-relay models --help                       # every group has its own help',
      ),
    );
  startCommand(program);
  tokensCommand(program);
  caCommand(program);
  storeCommand(program);
  brokerCommand(program);
  devicesCommand(program);
  modelsCommand(program);
  deployCommand(program);
  deploymentsCommand(program);
  targetsCommand(program);
  jobsCommand(program);
  fleetCommand(program);
  auditCommand(program);
  whoamiCommand(program);
  completionCommand(program);
  return program;
}
