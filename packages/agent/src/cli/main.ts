#!/usr/bin/env node
// outpost-agent: enroll this device, and serve the models its relay deploys to it.

import { CommanderError } from 'commander';
import { OutpostError } from '@outpost/shared';
import { agentProgram } from './program.js';

try {
  await agentProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const message = err instanceof OutpostError ? `${err.code}: ${err.message}` : (err as Error).message;
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}
