// outpost-relay ca: the relay CA's certificate and fingerprint, read from the data dir on the
// relay host (the relay need not be running); `ca issue`: a certificate from that CA for a
// broker (Mosquitto's listener) or a client of it (mosquitto_ctrl as the plugin's admin).

import { InvalidArgumentError, type Command } from 'commander';
import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { caFingerprint, caFingerprintHex, createLogger, durationOption, examples } from '@outpost/shared';
import { RELAY_USER } from '../broker/relay-user.js';
import { readCaCert } from '../data-dir.js';
import { checkAdvertiseHost } from '../tls/advertised-names.js';
import { defaultDataDir } from './client.js';
import { CliError, print, printJson } from './output.js';
import { parseDurationOption } from './parse.js';

export function caCommand(program: Command): void {
  const ca = program
    .command('ca')
    .description("print the relay CA's certificate (PEM) and its fingerprint, for clients on other hosts (--ca FILE)")
    .option('--data-dir <dir>', 'the relay data dir (env OUTPOST_RELAY_DIR)')
    .option('--json', 'print { certificate, fingerprint, sha256 } as JSON')
    .addHelpText(
      'after',
      examples(
        'outpost-relay ca > relay-ca.pem                 # then elsewhere: outpost-relay devices list --relay https://relay:8080 --ca relay-ca.pem',
        'outpost-relay ca --json',
        'outpost-relay ca issue --server broker.example --out /etc/mosquitto/outpost',
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

  ca.command('issue')
    .description("issue a certificate from the relay's CA: a server one for a broker devices connect to (Mosquitto over mutual TLS), or a client one for a name")
    .option('--server <name>', 'a DNS name or IP address the broker is reached by (repeat for several)', collectName)
    .option('--client <name>', "a client certificate whose subject is this name (an MQTT user, e.g. the dynamic-security admin for mosquitto_ctrl)")
    .requiredOption('--out <dir>', 'where to write ca.crt and server.crt/server.key (or NAME.crt/NAME.key)')
    .addOption(durationOption('--valid <duration>', 'lifetime (at most 398d)', parseValid, 365 * 86_400_000))
    .option('--force', 'overwrite files that exist in --out')
    .addHelpText(
      'after',
      `
--data-dir and --json are the ca command's (before or after issue): the relay's data dir (its
CA is made there if it has none yet: run this as the relay's user), and the files as JSON.
The key is written with mode 0600: give it to the broker's user (chown mosquitto KEY). The
relay does not track or revoke certificates it issues this way: a --client one is that user
at the broker until --valid ends, so keep it short for an admin. Device names (dev_…) and
the relay's own user (outpost-relay) are refused: the relay issues those itself.
${examples(
  'outpost-relay ca issue --server broker.example --server 10.0.0.7 --out /etc/mosquitto/outpost',
  'outpost-relay ca issue --client admin --out ~/.outpost/mosquitto-admin     # mosquitto_ctrl --cert admin.crt --key admin.key',
)}`,
    )
    .action(async (_: unknown, cmd: Command) => {
      // --data-dir and --json belong to `ca`: commander gives them to the parent wherever they stand.
      const opts = cmd.optsWithGlobals<{ dataDir?: string; server?: string[]; client?: string; out: string; valid: number; force?: boolean; json?: boolean }>();
      if (Boolean(opts.server) === Boolean(opts.client)) throw new CliError('give --server NAME (repeatable) or --client NAME, one of the two');
      const base = opts.client ? opts.client : 'server';
      if (opts.client && !/^[A-Za-z0-9._-]{1,64}$/.test(opts.client)) throw new CliError(`--client ${JSON.stringify(opts.client)}: 1 to 64 letters, digits, dots, dashes or underscores`);
      // A broker that takes the user from the certificate would take these for a device or the relay.
      if (opts.client && (/^dev_/i.test(opts.client) || opts.client === RELAY_USER)) throw new CliError(`--client ${opts.client}: device names (dev_…) and ${RELAY_USER} are the relay's to issue; pick another name`);
      const files = { ca: join(opts.out, 'ca.crt'), cert: join(opts.out, `${base}.crt`), key: join(opts.out, `${base}.key`) };
      const existing = [files.cert, files.key, files.ca].filter((f) => existsSync(f));
      if (existing.length > 0 && !opts.force) throw new CliError(`${existing.join(' and ')} exist: pass --force to replace them, or another --out`);
      const { loadRelayCa, issueClientCert, issueServerCert } = await import('../tls/relay-tls.js');
      const dataDir = opts.dataDir ?? defaultDataDir();
      const hadCa = Boolean(readCaCert(dataDir));
      const relayCa = await loadRelayCa(dataDir, createLogger({ name: 'outpost-relay', level: 'warn' }));
      if (!hadCa && !opts.json) print(`made the relay CA in ${dataDir}/tls (fingerprint ${relayCa.fingerprint}): the relay started with --data-dir ${dataDir} uses it`);
      const made = opts.server ? await issueServerCert(relayCa, opts.server, opts.valid) : await issueClientCert(relayCa, opts.client!, opts.valid);
      mkdirSync(opts.out, { recursive: true, mode: 0o755 });
      writeWhole(files.key, made.key, 0o600);
      writeWhole(files.cert, made.cert, 0o644);
      writeWhole(files.ca, relayCa.pem, 0o644);
      const expiresAt = new Date(made.notAfter).toISOString();
      if (opts.json) return printJson({ ...files, expiresAt, caFingerprint: relayCa.fingerprint });
      print(`wrote ${files.cert} (with the CA after it), ${files.key} (0600) and ${files.ca}; valid until ${expiresAt}`);
    });
}

/** Written to a new file and renamed over the old: never a key in a file others could read, nor through a link. */
function writeWhole(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode, flag: 'wx' });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

const MAX_VALID_MS = 398 * 86_400_000;

function parseValid(value: string): number {
  const ms = parseDurationOption(value);
  if (ms > MAX_VALID_MS) throw new InvalidArgumentError('at most 398d (what browsers accept of a server certificate).');
  return ms;
}

function collectName(value: string, previous: string[] = []): string[] {
  try {
    return [...previous, checkAdvertiseHost(value)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace('--advertise-host ', ''));
  }
}
