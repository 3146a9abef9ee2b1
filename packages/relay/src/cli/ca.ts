// outpost-relay ca: the relay CA's certificate and fingerprint, read from the data dir on the
// relay host (the relay need not be running).

import type { Command } from 'commander';
import { caFingerprint, caFingerprintHex, examples } from '@outpost/shared';
import { readCaCert } from '../data-dir.js';
import { defaultDataDir } from './client.js';
import { CliError, printJson } from './output.js';

export function caCommand(program: Command): void {
  program
    .command('ca')
    .description("print the relay CA's certificate (PEM) and its fingerprint, for clients on other hosts (--ca FILE)")
    .option('--data-dir <dir>', 'the relay data dir (env OUTPOST_RELAY_DIR)')
    .option('--json', 'print { certificate, fingerprint, sha256 } as JSON')
    .addHelpText(
      'after',
      examples(
        'outpost-relay ca > relay-ca.pem                 # then elsewhere: outpost-relay devices list --relay https://relay:8080 --ca relay-ca.pem',
        'outpost-relay ca --json',
      ),
    )
    .action((opts: { dataDir?: string; json?: boolean }) => {
      const dataDir = opts.dataDir ?? defaultDataDir();
      const pem = readCaCert(dataDir);
      if (!pem) throw new CliError(`no CA in ${dataDir}/tls: start the relay once without --insecure (outpost-relay start), or pass --data-dir`);
      const fingerprint = caFingerprint(pem);
      if (opts.json) return printJson({ certificate: pem, fingerprint, sha256: caFingerprintHex(pem) });
      process.stdout.write(pem);
      process.stderr.write(`fingerprint ${fingerprint} (sha256 ${caFingerprintHex(pem)})\n`);
    });
}
