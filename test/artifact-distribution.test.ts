// Artifact distribution at scale: the relay bounds concurrent downloads (503 + Retry-After)
// and agents wait with jitter; an agent resumes an interrupted download with Range.

import t, { type Test } from 'tap';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packBundle } from '@outpost/shared';
import { FIXTURES, enrollDevice, startAgent, startRelay, tempDir, type TestRelay } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

/** A 32 MiB artifact (a job bundle of random bytes): downloads of it take a while. */
async function uploadBigArtifact(t: Test, relay: TestRelay): Promise<{ sha256: string; size: number }> {
  const dir = tempDir(t, 'big');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'noise.bin'), randomBytes(32 * 1024 * 1024));
  await packBundle(join(dir, 'src'), join(dir, 'big.tgz'));
  const body = readFileSync(join(dir, 'big.tgz'));
  const upload = await relay.fetch(`${relay.httpUrl}/v1/bundles`, { method: 'POST', headers: { authorization: `Bearer ${relay.token}`, 'content-type': 'application/octet-stream' }, body });
  return { sha256: ((await upload.json()) as { sha256: string }).sha256, size: body.length };
}

t.test('paced downloads and resumed downloads', async (t) => {
  const relay = await startRelay(t, { extraArgs: ['--max-downloads', '1', '--download-wait', '0'] });
  const d = await enrollDevice(t, relay, 'edge-1');
  const agent = await startAgent(t, d);

  // Hold the only download slot: a large artifact whose response we do not read.
  const { sha256: big } = await uploadBigArtifact(t, relay);
  const held = await new Promise<IncomingMessage>((resolve, reject) => {
    request(`${relay.httpUrl}/v1/artifacts/${big}`, { headers: { authorization: `Bearer ${relay.token}` }, ...relay.tls }, (res) => {
      res.pause(); // never read: the relay's send buffer fills and the download stays open
      resolve(res);
    })
      .on('error', reject)
      .end();
  });
  t.equal(held.statusCode, 200);
  const busy = await relay.fetch(`${relay.httpUrl}/v1/artifacts/${big}`, { headers: { authorization: `Bearer ${relay.token}` } });
  t.equal(busy.status, 503, 'past the bound, a download is turned away');
  t.equal(busy.headers.get('retry-after'), '1');
  t.equal(((await busy.json()) as { error: { code: string } }).error.code, 'OUTPOST_ERR_BUSY');

  // The agent is told to wait, and keeps downloading until a slot frees up.
  await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
  t.equal((await relay.cli('deploy', 'linear', '--device', d.deviceId)).code, 0);
  await waitFor('a 503 for the agent', async () => {
    const metrics = await (await relay.fetch(`${relay.httpUrl}/metrics`, { headers: { authorization: `Bearer ${relay.token}` } })).text();
    return /route="\/v1\/artifacts\/:sha256",status="503"\} [2-9]/.test(metrics) || undefined;
  });
  t.equal((await relay.api<{ models: Array<{ state: string }> }>('GET', `/v1/devices/${d.deviceId}`)).body.models[0]?.state, 'downloading', 'still downloading, not failed');
  held.destroy();
  await waitFor('the model serving once the slot is free', async () => (await agent.infer('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] })).status === 200 || undefined);

  // An interrupted download (the agent stopped with 100 bytes on disk) resumes where it stopped.
  await agent.stop();
  const v2 = JSON.parse((await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear', '--json')).stdout) as { sha256: string; size: number };
  const dep = JSON.parse((await relay.cli('deploy', 'linear:2', '--device', d.deviceId, '--json')).stdout) as { id: string };
  const bytes = readFileSync(join(FIXTURES, 'linear-v2.onnx'));
  writeFileSync(join(d.dataDir, 'models', `${v2.sha256}.partial`), bytes.subarray(0, 100));
  const again = await startAgent(t, d);
  await waitFor('the deployment to succeed', async () => (await relay.api<{ state: string }>('GET', `/v1/deployments/${dep.id}`)).body.state === 'succeeded' || undefined);
  const res = await again.infer<{ model_version: string }>('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  t.equal(res.body.model_version, '2');
  const metrics = await (await relay.fetch(`${relay.httpUrl}/metrics`, { headers: { authorization: `Bearer ${relay.token}` } })).text();
  t.match(metrics, /route="\/v1\/artifacts\/:sha256",status="206"\} 1/, 'the rest was fetched with Range');
  t.same(readFileSync(join(d.dataDir, 'models', v2.sha256)), bytes, 'and the file is whole and verified');
});

t.test('a download waits its turn for a slot, and leaves the queue when its client goes', async (t) => {
  const relay = await startRelay(t, { extraArgs: ['--max-downloads', '1', '--download-wait', '60s'] });
  const { sha256: big, size } = await uploadBigArtifact(t, relay);
  const url = `${relay.httpUrl}/v1/artifacts/${big}`;
  const auth = { authorization: `Bearer ${relay.token}` };
  const downloads = async () => {
    const text = await (await relay.fetch(`${relay.httpUrl}/metrics`, { headers: auth })).text();
    const get = (state: string) => Number(new RegExp(`^outpost_artifact_downloads\\{state="${state}"\\} (\\d+)`, 'm').exec(text)?.[1]);
    return { active: get('active'), waiting: get('waiting') };
  };
  const held = await new Promise<IncomingMessage>((resolve, reject) => {
    request(url, { headers: auth, ...relay.tls }, (res) => {
      res.pause();
      resolve(res);
    })
      .on('error', reject)
      .end();
  });
  t.equal(held.statusCode, 200);

  // A client that gives up while waiting leaves the queue.
  const quitter = new AbortController();
  const quit = relay.fetch(url, { headers: auth, signal: quitter.signal }).catch((err: Error) => err);
  await waitFor('the first waiter queued', async () => ((await downloads()).waiting === 1 ? true : undefined));
  quitter.abort();
  t.match(await quit, { name: 'AbortError' });
  await waitFor('the queue to empty', async () => ((await downloads()).waiting === 0 ? true : undefined));

  // A waiting download gets the slot the moment it frees, and the whole file.
  const waiter = relay.fetch(url, { headers: auth });
  await waitFor('the second waiter queued', async () => ((await downloads()).waiting === 1 ? true : undefined));
  t.same(await downloads(), { active: 1, waiting: 1 });
  held.destroy();
  const res = await waiter;
  t.equal(res.status, 200, 'served once the slot was free, not sent away');
  t.equal((await res.arrayBuffer()).byteLength, size);
  await waitFor('every slot back', async () => ((await downloads()).active === 0 ? true : undefined));
});
