// `outpost-relay broker nats-config`: everything a NATS cluster for Outpost needs to start, made
// once, offline: an operator with a signing key, the system account, the Outpost account (with
// JetStream, for the MQTT sessions and retained messages, replicated on every node up to 3) and
// its signing key, the relay's user, and one server config per node (decentralised JWT auth
// with the `full` resolver, so accounts and revocations are pushed at run time and kept).
//
// The relay gets one 0600 file with what it signs with; the operator's own key is written
// beside it, for the person who may one day need to re-sign the accounts, and is not needed by
// any running program.

import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import type { NatsCredentials } from './nats-account.js';

export interface NatsClusterPlan {
  nodes: number;
  /** The address each node listens on and the others reach it by: one for all, or one per node. */
  hosts: string[];
  clientPort: number;
  mqttPort: number;
  clusterPort: number;
  monitorPort: number;
  /** Absolute folder the configs point into (stores, resolver dirs). */
  dir: string;
  /** MQTT over TLS on the nodes' MQTT ports (a certificate from the relay CA, `ca issue --server`). */
  mqttTls?: { certFile: string; keyFile: string };
}

export interface NatsNode {
  name: string;
  host: string;
  clientPort: number;
  mqttPort: number;
  clusterPort: number;
  monitorPort: number;
}

export interface GeneratedCluster {
  /** File name (relative to the folder) → contents and mode. */
  files: Array<{ name: string; text: string; mode: number }>;
  nodes: NatsNode[];
  credentials: NatsCredentials;
}

const td = new TextDecoder();
const seed = (kp: { getSeed(): Uint8Array }) => td.decode(kp.getSeed());
const quoted = (s: string) => JSON.stringify(s);
const UNLIMITED = { subs: -1, conn: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, leaf: -1 };

/** Each node's addresses: one host for all means consecutive ports, one per node the same ports. */
export function planNodes(plan: Omit<NatsClusterPlan, 'dir'>): NatsNode[] {
  const same = plan.hosts.length === 1;
  if (!same && plan.hosts.length !== plan.nodes) throw new Error(`--hosts names ${plan.hosts.length} hosts for ${plan.nodes} nodes: give one host, or one per node`);
  return Array.from({ length: plan.nodes }, (_, i) => {
    const step = same ? i : 0;
    return { name: `outpost-${i + 1}`, host: plan.hosts[same ? 0 : i]!, clientPort: plan.clientPort + step, mqttPort: plan.mqttPort + step, clusterPort: plan.clusterPort + step, monitorPort: plan.monitorPort + step };
  });
}

export async function generateNatsCluster(plan: NatsClusterPlan): Promise<GeneratedCluster> {
  if (!Number.isInteger(plan.nodes) || plan.nodes < 1 || plan.nodes > 9) throw new Error(`--nodes ${plan.nodes}: give 1 to 9 (3 is the smallest cluster that survives a node)`);
  const nodes = planNodes(plan);
  const operator = createOperator();
  const operatorSigner = createOperator();
  const system = createAccount();
  const account = createAccount();
  const accountSigner = createAccount();

  const operatorJwt = await encodeOperator('outpost', operator, { system_account: system.getPublicKey(), signing_keys: [operatorSigner.getPublicKey()] });
  const systemJwt = await encodeAccount('SYS', system, { limits: UNLIMITED }, { signer: operatorSigner });
  const accountJwt = await encodeAccount(
    'OUTPOST',
    account,
    { signing_keys: [accountSigner.getPublicKey()], limits: { ...UNLIMITED, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 } },
    { signer: operatorSigner },
  );
  const relay = createUser();
  const relayJwt = await encodeUser('outpost-relay', relay, account, {}, { signer: accountSigner });
  const sysUser = createUser();
  const sysUserJwt = await encodeUser('outpost-relay-system', sysUser, system);

  const credentials: NatsCredentials = {
    accountPublicKey: account.getPublicKey(),
    accountName: 'OUTPOST',
    accountSigningSeed: seed(accountSigner),
    operatorSigningSeed: seed(operatorSigner),
    relayCreds: td.decode(fmtCreds(relayJwt, relay)),
    systemCreds: td.decode(fmtCreds(sysUserJwt, sysUser)),
  };
  const replicas = Math.min(3, plan.nodes);
  const routes = nodes.map((n) => `nats-route://${n.host}:${n.clusterPort}`);
  const conf = (n: NatsNode, i: number) =>
    [
      `# NATS node ${i + 1} of ${plan.nodes} for Outpost (outpost-relay broker nats-config). Start: nats-server -c ${plan.dir}/${n.name}.conf`,
      `server_name: ${n.name}`,
      `listen: ${quoted(`${n.host}:${n.clientPort}`)}`,
      `http: ${quoted(`${n.host}:${n.monitorPort}`)}`,
      `jetstream { store_dir: ${quoted(`${plan.dir}/${n.name}/jetstream`)} }`,
      'mqtt {',
      `  listen: ${quoted(`${n.host}:${n.mqttPort}`)}`,
      `  stream_replicas: ${replicas}`,
      ...(plan.mqttTls ? [`  tls { cert_file: ${quoted(plan.mqttTls.certFile)}, key_file: ${quoted(plan.mqttTls.keyFile)} }`] : []),
      '}',
      `operator: ${quoted(`${plan.dir}/operator.jwt`)}`,
      `system_account: ${system.getPublicKey()}`,
      // `full`: accounts (and the relay's revocations) are pushed at run time and kept on disk.
      `resolver { type: full, dir: ${quoted(`${plan.dir}/${n.name}/accounts`)}, allow_delete: false, interval: "2m" }`,
      `resolver_preload { ${system.getPublicKey()}: ${quoted(systemJwt)}, ${account.getPublicKey()}: ${quoted(accountJwt)} }`,
      ...(plan.nodes > 1 ? [`cluster { name: outpost, listen: ${quoted(`${n.host}:${n.clusterPort}`)}, routes: [ ${routes.map(quoted).join(', ')} ] }`] : []),
      '',
    ].join('\n');
  return {
    nodes,
    credentials,
    files: [
      { name: 'operator.jwt', text: operatorJwt, mode: 0o644 },
      { name: 'operator.nk', text: `${seed(operator)}\n`, mode: 0o600 },
      { name: 'relay-credentials.json', text: `${JSON.stringify(credentials, null, 2)}\n`, mode: 0o600 },
      ...nodes.map((n, i) => ({ name: `${n.name}.conf`, text: conf(n, i), mode: 0o644 })),
    ],
  };
}
