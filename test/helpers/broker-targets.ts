// The brokers the conformance tests run against, behind one shape: the relay's embedded broker
// (aedes with the relay's hooks), and Mosquitto with the ACL docs/architecture.md gives for an
// external broker, where it is installed. A case written once runs on both, so a difference is
// either the relay's policy (the case says so) or a bug.

import { join } from 'node:path';
import mqtt from 'mqtt';
import type { Test } from 'tap';
import { FIXTURES, startRelay, type TestRelay } from './programs.js';
import { startMosquitto, withAclFile } from './mosquitto.js';
import { needPackage } from './system-package.js';

/** A device as the broker knows it: it may use the topics under `prefix`. */
export interface DeviceIdentity {
  clientId: string;
  username: string;
  password: string;
  /** `outpost/v1/devices/{id}` (no trailing slash). */
  prefix: string;
  topic(leaf: string): string;
}

export interface BrokerTarget {
  name: 'embedded' | 'mosquitto';
  url: string;
  /** A device no other case has used. */
  device(): Promise<DeviceIdentity>;
  /**
   * Someone other than the device publishes to its `desired` topic (QoS 1, retained): the relay
   * itself, through a deployment, or on Mosquitto the relay's user.
   */
  publishDesired(device: DeviceIdentity): Promise<void>;
  /** The real relay behind the embedded broker. */
  relay?: TestRelay;
}

const identity = (id: string, password: string): DeviceIdentity => ({
  clientId: id,
  username: id,
  password,
  prefix: `outpost/v1/devices/${id}`,
  topic: (leaf) => `outpost/v1/devices/${id}/${leaf}`,
});

async function embedded(t: Test): Promise<BrokerTarget> {
  const relay = await startRelay(t);
  let pushed = false;
  return {
    name: 'embedded',
    url: relay.mqttUrl,
    relay,
    async device() {
      // The HTTP enrollment a device's agent makes, without spawning one per case.
      const token = await relay.api<{ token: string }>('POST', '/v1/tokens/enroll', {});
      const res = await relay.api<{ deviceId: string; secret: string }>('POST', '/v1/enroll', { name: 'conformance' }, token.body.token);
      if (res.status !== 201) throw new Error(`enrollment failed: ${res.status} ${JSON.stringify(res.body)}`);
      return identity(res.body.deviceId, res.body.secret);
    },
    async publishDesired(device) {
      if (!pushed) {
        const push = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
        if (push.code !== 0) throw new Error(push.stderr);
        pushed = true;
      }
      const deploy = await relay.cli('deploy', 'linear', '--device', device.clientId);
      if (deploy.code !== 0) throw new Error(deploy.stderr);
    },
  };
}

async function mosquitto(t: Test): Promise<BrokerTarget> {
  const broker = await startMosquitto(t, withAclFile);
  let n = 0;
  return {
    name: 'mosquitto',
    url: broker.url,
    // The ACL's pattern gives user `{id}` the topics under outpost/v1/devices/{id}/.
    device: async () => identity(`dev-${process.pid}-${++n}`, 'unused'),
    async publishDesired(device) {
      const relayUser = await mqtt.connectAsync(broker.url, { username: 'outpost-relay', clientId: `outpost-relay-${n}`, reconnectPeriod: 0 });
      await relayUser.publishAsync(device.topic('desired'), JSON.stringify({ revision: ++n, models: [] }), { qos: 1, retain: true });
      await relayUser.endAsync();
    },
  };
}

export interface TargetFactory {
  name: BrokerTarget['name'];
  /** Why the target cannot run here (a tap skip), or false. */
  skip: false | string;
  start(t: Test): Promise<BrokerTarget>;
}

/** The embedded broker, and Mosquitto (skipped with one line where it cannot be installed). */
export function brokerTargets(): TargetFactory[] {
  return [
    { name: 'embedded', skip: false, start: embedded },
    { name: 'mosquitto', skip: needPackage('mosquitto', 'mosquitto'), start: mosquitto },
  ];
}
