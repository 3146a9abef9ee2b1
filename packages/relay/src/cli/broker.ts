// outpost-relay broker nats-config: the config and keys of a NATS cluster for Outpost's devices
// (broker/nats-config.ts makes them), written into a folder, with how to start it.

import { existsSync, mkdirSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { examples, parsePort, parsePositiveInt } from '@outpost/shared';
import { print, printJson } from './output.js';

export function brokerCommand(program: Command): void {
  const broker = program
    .command('broker')
    .description('a clustered device broker: the config of a NATS cluster that speaks MQTT to devices')
    .addHelpText('after', examples('outpost-relay broker nats-config --nodes 3 --dir ./nats'));

  broker
    .command('nats-config')
    .description('write the server configs, keys and relay credentials of a NATS cluster for Outpost into a folder')
    .requiredOption('--dir <dir>', 'the folder to write into (made if missing; must hold no earlier config); node stores go under it too')
    .option('--nodes <n>', 'how many nodes (3 survives one dying)', parsePositiveInt, 3)
    .option('--host <host>', 'the address every node listens on (one host: ports count up per node)', '127.0.0.1')
    .option('--hosts <list>', 'one address per node, comma-separated (each node on its own machine, same ports)')
    .option('--client-port <port>', "NATS client port of the first node (the relays' --broker)", parsePort, 4222)
    .option('--mqtt-port <port>', "MQTT port of the first node (the devices', --advertise-mqtt-url)", parsePort, 1883)
    .option('--cluster-port <port>', 'route port of the first node', parsePort, 6222)
    .option('--monitor-port <port>', 'HTTP monitoring port of the first node', parsePort, 8222)
    .option('--mqtt-tls-cert <file>', 'serve MQTT over TLS with this certificate (PEM; make one with outpost-relay ca issue --server HOST)')
    .option('--mqtt-tls-key <file>', 'the key of --mqtt-tls-cert')
    .option('--json', 'print { dir, nodes: [{ name, host, clientPort, mqttPort, clusterPort, monitorPort, config }] } as JSON')
    .addHelpText('after', `
The cluster uses NATS's decentralised JWT auth: an operator, the Outpost account (JetStream on,
so MQTT sessions and retained messages are replicated on up to 3 nodes) and the relay's users.
The relay signs each enrolling device a user JWT that reaches only that device's subjects, and
revokes it on every node at once when the device is removed: no server restart, no user list.

Written: NODE.conf per node, operator.jwt, operator.nk (the operator's key, 0600: keep it
offline; no program needs it) and relay-credentials.json (0600: what every relay signs with;
give it to each relay with --nats-credentials). Node stores live in DIR/NODE/.

Examples:
  outpost-relay broker nats-config --nodes 3 --dir ./nats
  nats-server -c ./nats/outpost-1.conf & nats-server -c ./nats/outpost-2.conf & nats-server -c ./nats/outpost-3.conf &
  outpost-relay start --broker nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 \\
    --nats-credentials ./nats/relay-credentials.json --advertise-mqtt-url mqtt://127.0.0.1:1883,mqtt://127.0.0.1:1884,mqtt://127.0.0.1:1885
  outpost-relay broker nats-config --hosts 10.0.0.1,10.0.0.2,10.0.0.3 --dir /etc/outpost-nats --mqtt-tls-cert nats.crt --mqtt-tls-key nats.key
`)
    .action(async (opts: { dir: string; nodes: number; host: string; hosts?: string; clientPort: number; mqttPort: number; clusterPort: number; monitorPort: number; mqttTlsCert?: string; mqttTlsKey?: string; json?: boolean }) => {
      if (Boolean(opts.mqttTlsCert) !== Boolean(opts.mqttTlsKey)) throw new Error('--mqtt-tls-cert and --mqtt-tls-key go together: give both, or neither for plain MQTT');
      const dir = resolve(opts.dir);
      if (existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.conf') || f === 'relay-credentials.json')) {
        throw new Error(`${dir} holds a NATS config already: its relay credentials would no longer match the cluster; give another --dir (or remove that one)`);
      }
      const hosts = (opts.hosts ?? opts.host).split(',').map((h) => h.trim()).filter(Boolean);
      const { generateNatsCluster } = await import('../broker/nats-config.js');
      const made = await generateNatsCluster({
        nodes: opts.nodes,
        hosts,
        clientPort: opts.clientPort,
        mqttPort: opts.mqttPort,
        clusterPort: opts.clusterPort,
        monitorPort: opts.monitorPort,
        dir,
        ...(opts.mqttTlsCert && opts.mqttTlsKey ? { mqttTls: { certFile: resolve(opts.mqttTlsCert), keyFile: resolve(opts.mqttTlsKey) } } : {}),
      });
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      for (const f of made.files) {
        const file = join(dir, f.name);
        writeFileSync(file, f.text, { mode: f.mode });
        chmodSync(file, f.mode);
      }
      const scheme = opts.mqttTlsCert ? 'mqtts' : 'mqtt';
      const brokerUrls = made.nodes.map((n) => `nats://${n.host}:${n.clientPort}`).join(',');
      const mqttUrls = made.nodes.map((n) => `${scheme}://${n.host}:${n.mqttPort}`).join(',');
      if (opts.json) {
        printJson({ dir, nodes: made.nodes.map((n) => ({ ...n, config: join(dir, `${n.name}.conf`) })), broker: brokerUrls, advertiseMqttUrl: mqttUrls, credentials: join(dir, 'relay-credentials.json') });
        return;
      }
      print(`Wrote a ${made.nodes.length}-node NATS config to ${dir}.`);
      print('Start each node (on its host):');
      for (const n of made.nodes) print(`  nats-server -c ${join(dir, `${n.name}.conf`)}`);
      print('Then each relay:');
      print(`  outpost-relay start --broker ${brokerUrls} \\\n    --nats-credentials ${join(dir, 'relay-credentials.json')} --advertise-mqtt-url ${mqttUrls}`);
    });
}
