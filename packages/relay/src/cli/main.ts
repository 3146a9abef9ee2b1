#!/usr/bin/env node
// outpost-relay: run the relay, and manage a running one.

import { CommanderError } from 'commander';
import { OutpostError } from '@outpost/shared';
import { relayProgram } from './program.js';
import { CliError } from './output.js';

try {
  await relayProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const message = err instanceof CliError ? err.message : err instanceof OutpostError ? `${err.code}: ${err.message}` : `${(err as Error).message}`;
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}
