// outpost-relay start: run the relay in the foreground until SIGINT/SIGTERM.

import { InvalidArgumentError, Option, type Command } from 'commander';
import { checkStoreUrl, passwordWarning } from '../store/store-url.js';
import { parseNatsUrls } from '../broker/nats-urls.js';
import { checkAdvertiseHost } from '../tls/advertised-names.js';
import { collectDataset, durationOption, parsePort, parsePositiveInt, sizeOption, closeOnSignals } from '@outpost/shared';
import { defaultDataDir } from './client.js';
import { RELAY_DEFAULTS } from '../config.js';
import { parseDurationOption, parseDurationOrZero } from './parse.js';

export function startCommand(program: Command): void {
  program
    .command('start')
    .description('run the relay: MQTT broker, registry, HTTP API (foreground; Ctrl-C stops it)')
    .option('--data-dir <dir>', 'where the database, artifacts and admin token live (env OUTPOST_RELAY_DIR)', defaultDataDir())
    .addOption(new Option('--store <url>', 'keep the workspace in PostgreSQL instead of SQLite in --data-dir: postgres://USER@HOST:5432/DB (password from PGPASSWORD or ~/.pgpass, not the command line)').env('OUTPOST_STORE_URL'))
    .option('--artifacts-dir <dir>', 'where models, bundles and job outputs are kept (default DATA_DIR/artifacts): a shared filesystem for several relays')
    .option('--ca-dir <dir>', "where the relay CA's key and certificate are kept (default DATA_DIR/tls): one folder (shared, or the same files) for several relays")
    .option('--host <host>', 'interface to listen on', RELAY_DEFAULTS.host)
    .option('--http-port <port>', 'HTTPS API port (HTTP with --insecure; 0 picks a free one)', parsePort, RELAY_DEFAULTS.httpPort)
    .option('--mqtt-port <port>', 'embedded MQTT broker port: MQTT over TLS, default 8883 (1883 with --insecure; 0 picks a free one)', parsePort)
    .option('--insecure', 'plain HTTP and MQTT without TLS: tokens, secrets and models cross the network readable (for a demo on 127.0.0.1)')
    .option('--advertise-host <name>', 'a name or address devices and people reach this relay by, for its certificate (repeat for several; the host\'s own names and addresses are in already)', collectHost)
    .option('--tls-cert <file>', 'a certificate (PEM, with its chain) for the HTTPS side instead of the relay\'s own, e.g. from a public CA; device certificates still come from the relay\'s CA')
    .option('--tls-key <file>', 'the key of --tls-cert (PEM)')
    .addOption(durationOption('--device-cert-ttl <duration>', 'lifetime of device certificates; agents renew after two thirds of it', parseDurationOption, RELAY_DEFAULTS.deviceCertTtlMs))
    .option('--mqtt-url <url>', 'use this external MQTT broker instead of the embedded one (mqtt://user:pass@host:port; mqtts://user@host:port shows a certificate from the relay CA naming the user)')
    .option('--mqtt-ca <file>', "with an mqtts:// --mqtt-url: the CA (PEM) of that broker's certificate, when not the relay's own (outpost-relay ca issue) or a public one; handed to devices at enrollment")
    .option('--mosquitto-dynsec', "with --mqtt-url: keep device accounts on that Mosquitto through its dynamic security plugin (the URL's user needs the plugin's admin role)")
    .option('--advertise-mqtt-url <url>', 'MQTT URL to hand enrolling devices (default: the host they reached the API on); a comma-separated list for a cluster, which agents fail over through')
    .option('--broker <urls>', 'a NATS cluster as the device broker: nats://HOST:4222[,nats://…]; the relay speaks NATS, devices MQTT to the nodes in --advertise-mqtt-url')
    .addOption(durationOption('--device-silence <duration>', 'with --broker: a device heard nothing from this long is marked offline (a NATS node that dies sends no last wills)', parseDurationOption, RELAY_DEFAULTS.deviceSilenceMs))
    .option('--nats-credentials <file>', 'with --broker: the keys and users `outpost-relay broker nats-config` wrote (default DATA_DIR/nats-credentials.json)')
    .addOption(sizeOption('--max-model-size <size>', 'largest model upload accepted, e.g. 500MB', RELAY_DEFAULTS.maxModelBytes))
    .option('--max-downloads <n>', 'artifact downloads served at once; more devices wait their turn', parsePositiveInt, RELAY_DEFAULTS.maxDownloads)
    .addOption(durationOption('--download-wait <duration>', 'how long a download waits for a free slot before it is told to retry (0 = not at all)', parseDurationOrZero, RELAY_DEFAULTS.downloadWaitMs))
    .option('--device-rate <n>', 'MQTT messages a second one device may publish, sustained (embedded broker)', parsePositiveInt, RELAY_DEFAULTS.deviceLimits.ratePerSec)
    .option('--device-burst <n>', 'messages one device may publish in a burst above --device-rate', parsePositiveInt, RELAY_DEFAULTS.deviceLimits.burst)
    .addOption(sizeOption('--device-retained <size>', 'bytes of retained messages one device may keep in the embedded broker', RELAY_DEFAULTS.deviceLimits.retainedBytes))
    .option('--run-log-lines <n>', 'log lines kept per job run', parsePositiveInt, RELAY_DEFAULTS.runQuotas.logLines)
    .option('--run-metric-points <n>', 'metric points kept per job run', parsePositiveInt, RELAY_DEFAULTS.runQuotas.metricPoints)
    .addOption(durationOption('--artifact-check-interval <duration>', 'how often every stored file is hashed against its name; a corrupt one is quarantined (0 = never)', parseDurationOrZero, RELAY_DEFAULTS.artifactCheckIntervalMs))
    .option('--dataset <name=path>', 'a dataset on this host that jobs on `local` may ask for (repeat for several)', collectDataset)
    .addOption(durationOption('--duplicate-clear <duration>', 'a device marked duplicate-connection (two agents on its identity) is unmarked after this long without a takeover', parseDurationOption, RELAY_DEFAULTS.duplicateClearMs))
    .addHelpText('after', `
Devices past their quotas are throttled (messages dropped), then disconnected for 10 s; each
time is counted in /metrics (outpost_device_quota_events_total) and told once a minute per
device in the log and on the fleet stream. docs/api.md lists every limit.

Two agents using one device's identity (a copied data dir) take its connection from each other;
after three takeovers within a minute the device is marked duplicate-connection (devices show,
the fleet stream, the dashboard) and both agents are told to back off.

TLS needs no setup: on first start the relay makes its own CA in DATA_DIR/tls and a server
certificate for every name and address it is reached by; enrollment tokens carry the CA's
fingerprint, so agents trust it with nothing to copy. \`outpost-relay ca\` prints the CA for
CLI clients on other hosts (--ca FILE or OUTPOST_CA_FILE). The server certificate is checked
daily and remade a month before its end; SIGHUP (or the daily check) also reads --tls-cert and
--tls-key again, so a renewed certificate is served without a restart.

With Mosquitto over mutual TLS (require_certificate, use_identity_as_username), give it a
server certificate from the relay's CA (outpost-relay ca issue --server HOST --out DIR) and
--mqtt-url mqtts://…: the relay shows certificates naming its users, devices theirs. The
README's "External Mosquitto" section has the whole broker config.

Several relays serve one workspace when they share --store postgres://…, --mqtt-url (one
external broker), --artifacts-dir and --ca-dir; put any HTTP load balancer in front. One of them
leads (the job scheduler, staged rollouts); when it stops or dies another takes over at
once. Each device message is handled by one relay (MQTT shared subscriptions), and fleet
stream clients on any relay see every relay's events with the same seqs.

A NATS cluster can carry the device traffic instead (--broker nats://…): make its config and
keys with \`outpost-relay broker nats-config --nodes 3 --dir DIR\`, start the nodes, and start
relays with --broker, --nats-credentials DIR/relay-credentials.json and --advertise-mqtt-url
listing the nodes' MQTT ports. Each device gets a NATS user JWT at enrollment that reaches only
its own subjects; \`devices remove\` revokes it on every node at once.

Examples:
  outpost-relay start --data-dir ~/.outpost/relay
  PGPASSWORD=… outpost-relay start --store postgres://outpost@db.internal:5432/outpost
  outpost-relay start --advertise-host relay.factory.example --advertise-host 10.0.0.5
  outpost-relay start --tls-cert /etc/ssl/relay.pem --tls-key /etc/ssl/relay.key
  outpost-relay start --insecure --host 127.0.0.1                # plain HTTP/MQTT, this host only
  outpost-relay start --mqtt-url mqtt://outpost:PASS@broker:1883 --mosquitto-dynsec
  outpost-relay start --mqtt-url mqtts://admin@broker:8883 --mosquitto-dynsec    # Mosquitto with mutual TLS
  outpost-relay start --device-rate 50 --device-burst 500 --run-log-lines 200000
  OUTPOST_STORE_URL=postgres://outpost@db/outpost outpost-relay start --mqtt-url mqtts://relay@broker:8883 \\
    --artifacts-dir /mnt/shared/artifacts --ca-dir /mnt/shared/ca     # one of several relays
  outpost-relay start --broker nats://n1:4222,nats://n2:4222,nats://n3:4222 --nats-credentials nats/relay-credentials.json \\
    --advertise-mqtt-url mqtt://n1:1883,mqtt://n2:1883,mqtt://n3:1883   # a NATS cluster
`)
    .action(async (opts: { dataDir: string; artifactsDir?: string; caDir?: string; store?: string; host: string; httpPort: number; mqttPort?: number; insecure?: boolean; advertiseHost?: string[]; tlsCert?: string; tlsKey?: string; deviceCertTtl: number; mqttUrl?: string; mqttCa?: string; mosquittoDynsec?: boolean; advertiseMqttUrl?: string; broker?: string; natsCredentials?: string; deviceSilence: number; maxModelSize: number; maxDownloads: number; downloadWait: number; dataset?: Record<string, string>; deviceRate: number; deviceBurst: number; deviceRetained: number; runLogLines: number; runMetricPoints: number; artifactCheckInterval: number; duplicateClear: number }) => {
      // Checked here, not by commander, whose message would repeat the value (and its password).
      if (opts.store) checkStoreUrl(opts.store);
      const warning = opts.store && passwordWarning(opts.store, '--store');
      if (warning) process.stderr.write(`${warning}\n`);
      if (opts.natsCredentials && opts.broker === undefined) throw new Error('--nats-credentials is for a NATS cluster: give --broker nats://… too');
      // Loaded here so the other commands start fast.
      const { createRelay } = await import('../relay.js');
      const relay = await createRelay({
        dataDir: opts.dataDir,
        storeUrl: opts.store,
        artifactsDir: opts.artifactsDir,
        caDir: opts.caDir,
        host: opts.host,
        httpPort: opts.httpPort,
        mqttPort: opts.mqttPort,
        mqttUrl: opts.mqttUrl,
        mqttCaFile: opts.mqttCa,
        mosquittoDynsec: opts.mosquittoDynsec,
        advertisedMqttUrl: opts.advertiseMqttUrl,
        ...(opts.broker !== undefined ? { natsUrls: parseNatsUrls(opts.broker), natsCredentialsFile: opts.natsCredentials, deviceSilenceMs: opts.deviceSilence } : {}),
        maxModelBytes: opts.maxModelSize,
        datasets: opts.dataset ?? {},
        maxDownloads: opts.maxDownloads,
        downloadWaitMs: opts.downloadWait,
        deviceLimits: { ratePerSec: opts.deviceRate, burst: opts.deviceBurst, retainedBytes: opts.deviceRetained },
        runQuotas: { logLines: opts.runLogLines, metricPoints: opts.runMetricPoints },
        artifactCheckIntervalMs: opts.artifactCheckInterval,
        duplicateClearMs: opts.duplicateClear,
        insecure: opts.insecure,
        advertiseHosts: opts.advertiseHost,
        tlsCertFile: opts.tlsCert,
        tlsKeyFile: opts.tlsKey,
        deviceCertTtlMs: opts.deviceCertTtl,
      });
      if (relay.newAdminToken) {
        process.stderr.write(
          `\nAdmin token (shown once; saved with mode 0600 in ${opts.dataDir}/admin.token):\n  ${relay.newAdminToken}\n\n` +
            `CLI commands on this host use it by themselves; elsewhere pass --token or set OUTPOST_TOKEN.\n\n`,
        );
      }
      if (relay.ca) process.stderr.write(`CA fingerprint (enrollment tokens carry it): ${relay.ca.fingerprint}\n`);
      closeOnSignals(relay);
      // SIGHUP: read --tls-cert/--tls-key again (a renewed certificate), as nginx reloads on it.
      process.on('SIGHUP', () => {
        relay.reloadTls().then(
          (changed) => process.stderr.write(changed ? 'serving the new certificate\n' : 'the certificates are unchanged\n'),
          (err: Error) => process.stderr.write(`${err.message}\n`),
        );
      });
    });
}

function collectHost(value: string, previous: string[] = []): string[] {
  try {
    return [...previous, checkAdvertiseHost(value)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}
