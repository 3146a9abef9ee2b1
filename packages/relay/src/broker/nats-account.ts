// Device identities on a NATS cluster, the NATS-native way: decentralised JWT auth. The
// cluster trusts an operator; the relay holds a signing key of the Outpost account and signs
// each device a user JWT (a bearer token, usable over MQTT only) that may publish only the
// leaves a device writes and subscribe only under its own subjects. No server restart and no
// server-side user list: a new device's JWT works at once. A removed device is revoked by
// adding its user key to the account JWT's revocations, re-signed with the operator signing key
// and pushed to the cluster's resolver (which disconnects it at once, on every node).
//
// Each device's user key is derived from the account signing seed and the device id (HMAC),
// so the relay can revoke a device without storing its key anywhere.
//
// Signatures and public keys come from Node's own Ed25519 (OpenSSL), not nkeys' tweetnacl:
// a JWT took 30-130 ms of JavaScript per enrollment there, about 0.1 ms here
// (docs/benchmarks.md, "NATS cluster"); the bytes are the same (Ed25519 is deterministic).

import { createHmac, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { decode, encodeAccount, encodeUser, fromPublic, fromSeed, type Account, type KeyPair } from '@nats-io/jwt';
import { Prefix } from '@nats-io/nkeys';
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import { DEVICE_WRITTEN_LEAVES } from '@outpost/shared';

/** The relay's file from `outpost-relay broker nats-config` (mode 0600). */
export interface NatsCredentials {
  /** The account devices and relays live in. */
  accountPublicKey: string;
  accountName: string;
  /** Signs device user JWTs. */
  accountSigningSeed: string;
  /** Re-signs the account JWT (revocations); listed in the operator JWT's signing keys. */
  operatorSigningSeed: string;
  /** The relay's own user (creds file text) in the account: every device subject. */
  relayCreds: string;
  /** A user of the system account, to read and push the account JWT. */
  systemCreds: string;
  /** The largest message a device may send (bytes), as the embedded broker's packet bound. */
  maxPayload?: number;
}

const FIELDS = ['accountPublicKey', 'accountName', 'accountSigningSeed', 'operatorSigningSeed', 'relayCreds', 'systemCreds'] as const;

export function readNatsCredentials(file: string): NatsCredentials {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`--nats-credentials ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}: make it with outpost-relay broker nats-config --dir DIR (it writes DIR/relay-credentials.json)`);
  }
  if ((statSync(file).mode & 0o077) !== 0) throw new Error(`--nats-credentials ${file} can be read by other users: it holds signing keys; chmod 600 ${file}`);
  let value: Partial<NatsCredentials>;
  try {
    value = JSON.parse(text) as Partial<NatsCredentials>;
  } catch {
    throw new Error(`--nats-credentials ${file} is not JSON: make it again with outpost-relay broker nats-config`);
  }
  for (const f of FIELDS) if (typeof value[f] !== 'string' || !value[f]) throw new Error(`--nats-credentials ${file} has no "${f}": make it again with outpost-relay broker nats-config`);
  return value as NatsCredentials;
}

/** Subjects are topics with dots (NATS's MQTT mapping): `outpost/v1/devices/x/y` is `outpost.v1.devices.x.y`. */
export const deviceSubject = (deviceId: string, leaf?: string) => `outpost.v1.devices.${deviceId}${leaf ? `.${leaf}` : ''}`;

const te = new TextEncoder();
const td = new TextDecoder();
/** The DER head of a PKCS#8 Ed25519 private key; the 32-byte seed follows it. */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

function ed25519Key(rawSeed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, rawSeed]), format: 'der', type: 'pkcs8' });
}

/** The nkey public key (U…, A…) of an Ed25519 private key. */
function nkeyPublic(key: KeyObject, prefix: Prefix): string {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return td.decode(Codec.encode(prefix, new Uint8Array(spki.subarray(spki.length - 32))));
}

/** An nkeys KeyPair over an encoded seed (S…) whose signing is Node's. */
export function nativeKeyPair(seed: string): KeyPair {
  const { prefix, buf } = Codec.decodeSeed(te.encode(seed));
  const key = ed25519Key(buf);
  const publicKey = nkeyPublic(key, prefix);
  const slow = fromSeed(te.encode(seed)); // for what is not on the hot path
  return {
    getPublicKey: () => publicKey,
    getPrivateKey: () => slow.getPrivateKey(),
    getSeed: () => slow.getSeed(),
    sign: (data: Uint8Array) => new Uint8Array(sign(null, data, key)),
    verify: (data: Uint8Array, sig: Uint8Array) => slow.verify(data, sig),
    clear: () => slow.clear(),
  } as KeyPair;
}

export class NatsAccount {
  readonly #creds: NatsCredentials;
  readonly #signer: KeyPair;
  readonly #operator: KeyPair;

  constructor(creds: NatsCredentials) {
    this.#creds = creds;
    this.#signer = nativeKeyPair(creds.accountSigningSeed);
    this.#operator = nativeKeyPair(creds.operatorSigningSeed);
    fromPublic(creds.accountPublicKey); // a malformed key fails here, at start
  }

  get accountPublicKey(): string {
    return this.#creds.accountPublicKey;
  }

  /** The device's user public key: the same for a device id each time, never stored. */
  userPublicKey(deviceId: string): string {
    const raw = createHmac('sha256', this.#creds.accountSigningSeed).update(`outpost-device:${deviceId}`).digest();
    return nkeyPublic(ed25519Key(raw), Prefix.User);
  }

  /** The password the device gives its MQTT CONNECT: a bearer user JWT limited to its own subjects. */
  async deviceJwt(deviceId: string): Promise<string> {
    // A bearer token: the server never asks the device to sign with the user key, so only its
    // public half is needed (and the JWT names it, for revocation).
    return encodeUser(
      deviceId,
      fromPublic(this.userPublicKey(deviceId)),
      fromPublic(this.#creds.accountPublicKey),
      {
        bearer_token: true,
        // A bearer token works for whoever holds it: over MQTT only, so it cannot open a NATS
        // session and subscribe to the $MQTT subjects that carry other devices' QoS 1 messages.
        allowed_connection_types: ['MQTT'],
        pub: { allow: DEVICE_WRITTEN_LEAVES.map((leaf) => deviceSubject(deviceId, leaf)) },
        // $MQTT.sub.<nuid>: where NATS delivers this session's own QoS 1 messages.
        sub: { allow: [deviceSubject(deviceId), deviceSubject(deviceId, '>'), '$MQTT.sub.>'] },
        subs: 32,
        payload: this.#creds.maxPayload ?? 1 << 20,
      },
      { signer: this.#signer },
    );
  }

  /**
   * The account JWT with the device's user revoked (every JWT of its key issued up to now),
   * from the current one: the cluster's resolver holds the account, so several relays revoking
   * at once each add to what is there (they take a store lock around it).
   */
  async revoked(currentJwt: string, deviceIds: string[], nowSec = Math.floor(Date.now() / 1000)): Promise<string> {
    const claims = decode<Account>(currentJwt);
    if (claims.sub !== this.#creds.accountPublicKey) throw new Error(`the cluster's account JWT is for ${claims.sub}, not ${this.#creds.accountPublicKey}: --nats-credentials is from another nats-config`);
    const { type: _t, version: _v, ...account } = claims.nats as Account & { type?: string; version?: number };
    const revocations = { ...(account.revocations ?? {}) };
    for (const id of deviceIds) revocations[this.userPublicKey(id)] = nowSec;
    return encodeAccount(claims.name, fromPublic(this.#creds.accountPublicKey), { ...account, revocations }, { signer: this.#operator });
  }
}

export const textOf = (data: Uint8Array) => td.decode(data);
