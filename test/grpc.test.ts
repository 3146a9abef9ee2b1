// KServe v2 over gRPC (Triton's inference.GRPCInferenceService) on the agent's own port: the
// same answers as HTTP and as onnxruntime in this process, for raw_input_contents and
// `contents`, several datatypes; batching, the token, TLS; hostile calls get the right status
// and the port keeps serving. A real relay, real agents, real onnxruntime.

import t, { type Test } from 'tap';
import { join } from 'node:path';
import { openSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { AGENT_BIN, FIXTURES, enrollDevice, runCli, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { createAgent } from '../packages/agent/dist/agent.js';
import { createLogger } from '@outpost/shared';
import { infer, type Tensor } from './helpers/kserve.js';
import { grpcClient } from './helpers/kserve-grpc.js';
import { waitFor } from './helpers/wait.js';
import { seededRandom } from './fixtures/onnx-builder.js';

const { onnx } = onnxProto;

/** A model with an input and output of each of INT32, BOOL, UINT8, FP16 and BYTES, all [batch, 2]. */
function typesModel(): Uint8Array {
  const T = onnx.TensorProto.DataType;
  const info = (name: string, elemType: number) =>
    onnx.ValueInfoProto.create({ name, type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType, shape: onnx.TensorShapeProto.create({ dim: [{ dimParam: 'batch' }, { dimValue: 2 }] }) }) }) });
  const ins: Array<[string, number]> = [['i32', T.INT32], ['b', T.BOOL], ['u8', T.UINT8], ['h', T.FLOAT16], ['s', T.STRING]];
  const node = (op: string, input: string) => onnx.NodeProto.create({ name: `${op}_${input}`, opType: op, input: op === 'Add' ? [input, input] : [input], output: [`${input}_out`] });
  const graph = onnx.GraphProto.create({
    name: 'types',
    input: ins.map(([n, e]) => info(n, e)),
    output: ins.map(([n, e]) => info(`${n}_out`, e)),
    node: [node('Add', 'i32'), node('Not', 'b'), node('Identity', 'u8'), node('Identity', 'h'), node('Identity', 's')],
  });
  return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 13 }], producerName: 'outpost-test', graph })).finish();
}

const ORT_TYPE: Record<string, ort.Tensor.Type> = { FP32: 'float32', INT64: 'int64', INT32: 'int32', BOOL: 'bool', UINT8: 'uint8', FP16: 'float16', BYTES: 'string' };

/** Runs a model file in this process: what every served answer must equal. */
async function reference(file: string, inputs: Tensor[]): Promise<Record<string, unknown[]>> {
  const session = await ort.InferenceSession.create(file);
  try {
    const feeds = Object.fromEntries(inputs.map((x) => [x.name, new ort.Tensor(ORT_TYPE[x.datatype]!, x.data as never, x.shape)]));
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, values(v.data as Tensor['data'])]));
  } finally {
    await session.release();
  }
}

/** Elements comparably: numbers (BigInts too), strings as they are. */
const values = (data: Tensor['data']): unknown[] => Array.from(data as ArrayLike<unknown>, (v) => (typeof v === 'bigint' || typeof v === 'boolean' ? Number(v) : v));
const rnd = seededRandom(7);
const floats = (n: number) => Float32Array.from({ length: n }, () => Math.round((rnd() * 2 - 1) * 1000) / 100);

/** The rejection of a call, with its gRPC code and message. */
async function refused(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('the call was not refused');
}

t.test('KServe v2 over gRPC', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'edge');
  const agent = await startAgent(t, device, ['--max-request-size', '4MiB']);
  t.match(agent.grpcAddress, /^127\.0\.0\.1:\d+$/, 'the agent says where its gRPC port is');
  const typesFile = join(tempDir(t, 'types'), 'types.onnx');
  writeFileSync(typesFile, typesModel());
  for (const [name, file] of [['linear', join(FIXTURES, 'linear.onnx')], ['multi', join(FIXTURES, 'multi.onnx')], ['types', typesFile]] as const) {
    const res = await relay.cli('models', 'push', file, '--name', name);
    t.equal(res.code, 0, res.stderr);
  }
  const deploy = async (...args: string[]) => {
    const res = await relay.cli('deploy', ...args, '--device', device.deviceId, '--wait', '--json');
    t.equal(res.code, 0, res.stderr);
  };
  await deploy('linear');
  await deploy('multi');
  await deploy('types');
  const client = grpcClient(agent.grpcAddress!);
  t.teardown(() => client.close());
  const http = async (path: string) => {
    const res = await fetch(`${agent.httpUrl}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const metrics = async () => (await fetch(`${agent.httpUrl}/metrics`)).text();
  const metric = (text: string, name: string, model: string) => Number(new RegExp(`^${name}\\{model="${model}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  const x = (rows: number) => [{ name: 'x', datatype: 'FP32' as const, shape: [rows, 4], data: floats(rows * 4) }];
  const stillServing = async (t: Test, what: string) => {
    t.equal(await client.live(), true, `${what}: live`);
    const res = await client.infer('linear', x(1));
    t.same(res.outputs[0]!.shape, [1, 3], `${what}: and serving`);
  };

  await t.test('health and metadata answer as HTTP does', async (t) => {
    t.equal(await client.live(), (await http('/v2/health/live')).body.live);
    t.equal(await client.ready(), (await http('/v2/health/ready')).body.ready);
    t.equal(await client.ready(), true);
    t.same(await client.serverMetadata(), (await http('/v2')).body);
    for (const model of ['linear', 'multi', 'types']) {
      t.equal(await client.modelReady(model), (await http(`/v2/models/${model}/ready`)).body.ready, `${model} ready`);
      t.same(await client.metadata(model), (await http(`/v2/models/${model}`)).body, `${model} metadata`);
    }
    t.same(await client.metadata('linear', '1'), (await http('/v2/models/linear/versions/1')).body, 'by version');
    const unknown = await refused(client.metadata('nope'));
    t.equal(unknown.code, status.NOT_FOUND);
    t.equal(unknown.details, (await http('/v2/models/nope')).body.error, 'with the message HTTP gives');
    t.equal((await refused(client.modelReady('nope'))).code, status.NOT_FOUND);
    const version = await refused(client.modelReady('linear', '99'));
    t.equal(version.code, status.NOT_FOUND);
    t.equal(version.details, (await http('/v2/models/linear/versions/99/ready')).body.error);
    t.equal(version.metadata.get('outpost-code')[0], 'OUTPOST_ERR_MODEL_NOT_FOUND', 'the Outpost code rides in the trailers');
  });

  await t.test('inference equals the HTTP binary path and onnxruntime in this process', async (t) => {
    const cases: Array<[string, string, Tensor[]]> = [
      ['linear', join(FIXTURES, 'linear.onnx'), x(3)],
      ['multi', join(FIXTURES, 'multi.onnx'), [
        { name: 'a', datatype: 'FP32', shape: [2, 3], data: floats(6) },
        { name: 'b', datatype: 'FP32', shape: [2, 3], data: floats(6) },
        { name: 'k', datatype: 'INT64', shape: [], data: BigInt64Array.from([-3n]) },
      ]],
      ['types', typesFile, [
        { name: 'i32', datatype: 'INT32', shape: [2, 2], data: Int32Array.from([1, -2, 2147483, -7]) },
        { name: 'b', datatype: 'BOOL', shape: [2, 2], data: Uint8Array.from([1, 0, 0, 1]) },
        { name: 'u8', datatype: 'UINT8', shape: [2, 2], data: Uint8Array.from([0, 7, 128, 255]) },
        { name: 'h', datatype: 'FP16', shape: [2, 2], data: Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001]) },
        { name: 's', datatype: 'BYTES', shape: [2, 2], data: ['edge', 'é ü', '', 'x'.repeat(300)] },
      ]],
    ];
    for (const [model, file, inputs] of cases) {
      const ref = await reference(file, inputs);
      const viaHttp = await infer(agent.httpUrl, model, inputs, { binaryInputs: true, binaryOutputs: true });
      t.equal(viaHttp.status, 200, JSON.stringify(viaHttp.body));
      const raw = await client.infer(model, inputs, { id: 'req-1' });
      t.equal(raw.model_name, model);
      t.equal(raw.model_version, '1');
      t.equal(raw.id, 'req-1', 'the id comes back');
      t.same(raw.outputs.map((o) => o.name), viaHttp.outputs.map((o) => o.name), `${model}: the same outputs`);
      for (const [i, o] of raw.outputs.entries()) {
        t.equal(o.datatype, viaHttp.outputs[i]!.datatype, `${model}/${o.name}: datatype`);
        t.same(o.shape, viaHttp.outputs[i]!.shape, `${model}/${o.name}: shape`);
        t.same(values(o.data), values(viaHttp.outputs[i]!.data), `${model}/${o.name}: raw gRPC = HTTP binary`);
        t.same(values(o.data), ref[o.name], `${model}/${o.name}: = onnxruntime in process`);
      }
      // FP16 travels raw only (the proto has no 16-bit contents field).
      if (inputs.some((i) => i.datatype === 'FP16')) {
        const err = await refused(client.call('ModelInfer', { model_name: model, inputs: inputs.map((i) => ({ name: i.name, datatype: i.datatype, shape: i.shape, contents: { fp32_contents: [1, 2, 3, 4] } })) }));
        t.equal(err.code, status.INVALID_ARGUMENT);
        continue;
      }
      const contents = await client.infer(model, inputs, { raw: false });
      for (const [i, o] of contents.outputs.entries()) t.same(values(o.data), values(raw.outputs[i]!.data), `${model}/${o.name}: contents = raw`);
    }
    const some = await client.infer('multi', cases[1]![2], { outputs: ['k_next'] });
    t.same(some.outputs.map((o) => [o.name, values(o.data)]), [['k_next', [-2]]], 'only the outputs asked for');
  });

  await t.test('batching merges gRPC requests, and they count in the stats', async (t) => {
    await deploy('linear', '--max-batch-size', '16', '--max-queue-delay', '10s');
    const rows = [1, 3, 2, 1, 4, 1, 2, 2];
    const requests = rows.map((n) => x(n));
    const before = await metrics();
    const answers = await Promise.all(requests.map((inputs, i) => client.infer('linear', inputs, { raw: i % 2 === 0 })));
    for (const [i, res] of answers.entries()) {
      t.same(res.outputs[0]!.shape, [rows[i], 3]);
      const ref = (await reference(join(FIXTURES, 'linear.onnx'), requests[i]!)).y!;
      t.ok(values(res.outputs[0]!.data).every((v, j) => Math.abs((v as number) - (ref[j] as number)) < 1e-5), `request ${i} equals its unbatched answer`);
    }
    const after = await metrics();
    t.equal(metric(after, 'outpost_agent_batch_size_count', 'linear') - metric(before, 'outpost_agent_batch_size_count', 'linear'), 1, 'eight requests, one run');
    t.equal(metric(after, 'outpost_agent_batch_size_sum', 'linear') - metric(before, 'outpost_agent_batch_size_sum', 'linear'), 16, 'of 16 rows');
    t.equal(metric(after, 'outpost_agent_inference_requests_total', 'linear') - metric(before, 'outpost_agent_inference_requests_total', 'linear'), 8, 'eight requests counted');
    await deploy('linear');
  });

  await t.test('hostile calls get the right status and the port keeps serving', async (t) => {
    const rejectedBefore = metric(await metrics(), 'outpost_agent_inference_rejected_total', 'linear');
    const call = (request: Record<string, unknown>) => refused(client.call('ModelInfer', { model_name: 'linear', ...request }));
    const x1 = { name: 'x', datatype: 'FP32', shape: [1, 4] };
    const cases: Array<[string, Record<string, unknown>, status, RegExp]> = [
      ['wrong byte count', { inputs: [x1], raw_input_contents: [Buffer.alloc(12)] }, status.INVALID_ARGUMENT, /the shape needs 16 bytes of FP32, binary_data_size is 12/],
      ['unknown input', { inputs: [{ ...x1, name: 'z' }], raw_input_contents: [Buffer.alloc(16)] }, status.INVALID_ARGUMENT, /unknown input "z": the model takes "x"/],
      ['wrong datatype', { inputs: [{ ...x1, datatype: 'INT32' }], raw_input_contents: [Buffer.alloc(16)] }, status.INVALID_ARGUMENT, /datatype "INT32" does not match the model's FP32/],
      ['unknown datatype in contents', { inputs: [{ ...x1, datatype: 'FOO', contents: { fp32_contents: [1, 2, 3, 4] } }] }, status.INVALID_ARGUMENT, /datatype "FOO" does not match/],
      ['absurd dims, raw', { inputs: [{ ...x1, shape: [2 ** 31, 4] }], raw_input_contents: [Buffer.alloc(16)] }, status.INVALID_ARGUMENT, /the shape needs 34359738368 bytes of FP32/],
      ['absurd dims, contents', { inputs: [{ ...x1, shape: [2 ** 31, 4], contents: { fp32_contents: [1, 2, 3, 4] } }] }, status.INVALID_ARGUMENT, /needs 8589934592 elements, got 4/],
      ['dims past 2^53', { inputs: [{ ...x1, shape: ['9223372036854775807', '4'] }], raw_input_contents: [Buffer.alloc(16)] }, status.INVALID_ARGUMENT, /more elements than any request can carry/],
      ['negative dims', { inputs: [{ ...x1, shape: [-1, 4] }], raw_input_contents: [Buffer.alloc(16)] }, status.INVALID_ARGUMENT, /non-negative integers/],
      ['contents count', { inputs: [{ ...x1, contents: { fp32_contents: [1, 2, 3] } }] }, status.INVALID_ARGUMENT, /shape \[1,4\] needs 4 elements, got 3/],
      ['contents of another type', { inputs: [{ ...x1, contents: { int_contents: [1, 2, 3, 4] } }] }, status.INVALID_ARGUMENT, /FP32 data goes in contents.fp32_contents, not contents.int_contents/],
      ['no data', { inputs: [x1] }, status.INVALID_ARGUMENT, /no data/],
      ['raw and contents', { inputs: [{ ...x1, contents: { fp32_contents: [1, 2, 3, 4] } }], raw_input_contents: [Buffer.alloc(16)] }, status.INVALID_ARGUMENT, /not both/],
      ['raw count', { inputs: [x1], raw_input_contents: [Buffer.alloc(16), Buffer.alloc(16)] }, status.INVALID_ARGUMENT, /raw_input_contents has 2 entries for 1 inputs/],
      ['unknown output', { inputs: [x1], raw_input_contents: [Buffer.alloc(16)], outputs: [{ name: 'nope' }] }, status.INVALID_ARGUMENT, /unknown output "nope"/],
      ['long id', { id: 'i'.repeat(300), inputs: [x1], raw_input_contents: [Buffer.alloc(16)] }, status.INVALID_ARGUMENT, /"id" must be a string of at most 256/],
      ['unknown model', { model_name: 'nope', inputs: [x1], raw_input_contents: [Buffer.alloc(16)] }, status.NOT_FOUND, /no model "nope" on this device; it serves/],
      ['unknown version', { model_version: '7', inputs: [x1], raw_input_contents: [Buffer.alloc(16)] }, status.NOT_FOUND, /serves version 1, not 7/],
    ];
    for (const [what, request, code, message] of cases) {
      const err = await call(request);
      t.equal(err.code, code, `${what}: ${status[code]}`);
      t.match(err.details, message, what);
    }
    const badBytes = await refused(client.call('ModelInfer', { model_name: 'types', inputs: [{ name: 's', datatype: 'BYTES', shape: [1, 2] }], raw_input_contents: [Buffer.from([9, 0, 0, 0, 65])] }));
    t.match(badBytes, { code: status.INVALID_ARGUMENT, details: /input "s": BYTES element 0 claims 9 bytes, more than are left/ }, 'a BYTES length past the end');
    const narrow = await refused(client.call('ModelInfer', { model_name: 'types', inputs: [{ name: 'u8', datatype: 'UINT8', shape: [1, 2], contents: { uint_contents: [1, 256] } }] }));
    t.match(narrow, { code: status.INVALID_ARGUMENT, details: /element 1 is 256, not an integer in the UINT8 range/ }, 'a UINT8 past its range');
    t.equal(metric(await metrics(), 'outpost_agent_inference_rejected_total', 'linear') - rejectedBefore, 15, 'refused requests count as rejected, not as errors');

    const big = await call({ inputs: [{ ...x1, shape: [262144 + 1, 4] }], raw_input_contents: [Buffer.alloc(4 * 1024 * 1024 + 16)] });
    t.equal(big.code, status.RESOURCE_EXHAUSTED, 'a message past --max-request-size: RESOURCE_EXHAUSTED from grpc-js');
    await stillServing(t, 'after a message over the limit');

    // Garbage where an HTTP/2 preface belongs, and after a valid one.
    const [host, port] = agent.grpcAddress!.split(':') as [string, string];
    for (const garbage of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 0xff))])]) {
      await new Promise<void>((resolve, reject) => {
        const socket = connect(Number(port), host, () => socket.write(garbage));
        socket.on('data', () => {});
        socket.on('error', () => resolve()); // a reset is an answer too
        socket.on('close', () => resolve());
        socket.setTimeout(10_000, () => reject(new Error('the server kept a garbage connection open')));
      });
    }
    await stillServing(t, 'after garbage on the port');
  });

  await t.test('past --max-queue: RESOURCE_EXHAUSTED at once, then serving again', async (t) => {
    await deploy('linear', '--max-batch-size', '64', '--max-queue-delay', '2s', '--max-queue', '3');
    const queued = [0, 1, 2].map(() => client.infer('linear', x(1)));
    await waitFor('three requests queued', async () => (metric(await metrics(), 'outpost_agent_queue_depth', 'linear') === 3 ? true : undefined));
    const flood = await Promise.allSettled(Array.from({ length: 40 }, () => client.infer('linear', x(1))));
    t.ok(flood.every((r) => r.status === 'rejected'), 'every call past the queue is refused');
    for (const r of flood) {
      if (r.status !== 'rejected') continue;
      t.equal((r.reason as ServiceError).code, status.RESOURCE_EXHAUSTED);
      t.match((r.reason as ServiceError).details, /requests are already waiting for this model; retry shortly/);
    }
    t.equal((await Promise.all(queued)).length, 3, 'the queued ones are served');
    await stillServing(t, 'after the flood');
    await deploy('linear');
  });
});

t.test('gRPC with a token and TLS (--https): the device certificate, the token as metadata', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'cam');
  const tokenFile = join(tempDir(t, 'token'), 'inference.token');
  writeFileSync(tokenFile, 'inference-secret\n', { mode: 0o600 });
  const agent = await startAgent(t, device, ['--https', '--token-file', tokenFile]);
  const res = await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
  t.equal(res.code, 0, res.stderr);
  const deployed = await relay.cli('deploy', 'linear', '--device', device.deviceId, '--wait');
  t.equal(deployed.code, 0, deployed.stderr);
  const address = agent.grpcAddress!;
  const tls = { ca: relay.ca!, servername: device.deviceId };

  const ok = grpcClient(address, { ...tls, token: 'inference-secret' });
  const anonymous = grpcClient(address, tls);
  const wrong = grpcClient(address, { ...tls, token: 'guess' });
  const plain = grpcClient(address, { token: 'inference-secret', deadlineMs: 3000 });
  const misnamed = grpcClient(address, { ca: relay.ca!, token: 'inference-secret', deadlineMs: 3000 });
  t.teardown(() => [ok, anonymous, wrong, plain, misnamed].forEach((c) => c.close()));

  t.equal(await ok.ready(), true, "trusted by the relay's CA under the device id's name, with the token");
  const out = await ok.infer('linear', [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: Float32Array.from([1, 2, 3, 4]) }]);
  t.same(out.outputs[0]!.shape, [1, 3]);
  for (const [what, client] of [['no token', anonymous], ['a wrong token', wrong]] as const) {
    for (const p of [client.live(), client.metadata('linear'), client.infer('linear', [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) }])]) {
      const err = await refused(p);
      t.equal(err.code, status.UNAUTHENTICATED, `${what}: UNAUTHENTICATED`);
      t.match(err.details, /this agent requires a token: Authorization: Bearer TOKEN/);
    }
  }
  t.equal((await refused(plain.live())).code, status.UNAVAILABLE, 'plaintext gRPC gets no answer from the TLS port');
  t.equal((await refused(misnamed.live())).code, status.UNAVAILABLE, 'the certificate names the device, not an address');
  t.equal(await ok.live(), true, 'and it keeps serving');
});

t.test('--grpc-port off: no gRPC port', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'quiet');
  const agent = await startAgent(t, device, ['--grpc-port', 'off']);
  t.equal(agent.grpcAddress, undefined);
  t.equal((await fetch(`${agent.httpUrl}/v2/health/live`)).status, 200);
});

t.test('a gRPC port that is taken: a failure to start when asked for, left out when it was the default', async (t) => {
  const relay = await startRelay(t);
  const device = await enrollDevice(t, relay, 'squatted');
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const taken = (squatter.address() as { port: number }).port;
  const asked = await runCli(AGENT_BIN, ['start', '--data-dir', device.dataDir, '--host', '127.0.0.1', '--port', '0', '--grpc-port', String(taken)]);
  t.not(asked.code, 0, 'asked for with --grpc-port, it stops the start');
  t.match(asked.stderr, new RegExp(`gRPC port 127\\.0\\.0\\.1:${taken} cannot be opened`));
  // The CLI's default (8001, perhaps a Triton's): the agent serves HTTP alone, saying why.
  const lines: string[] = [];
  const log = createLogger({ name: 'agent', level: 'info', fd: openSync('/dev/null', 'w'), tee: { write: (line: string) => lines.push(line) } });
  const agent = await createAgent({ dataDir: device.dataDir, host: '127.0.0.1', port: 0, grpcPort: taken, grpcPortRequired: false, log });
  try {
    t.equal(agent.grpcAddress, undefined, 'no gRPC address');
    t.equal((await fetch(`${agent.httpUrl}/v2/health/live`)).status, 200, 'HTTP serves');
    t.ok(lines.some((l) => /no gRPC port: serving KServe v2 over HTTP only/.test(l)), 'the log says why');
  } finally {
    await agent.close(); // before the device's folder goes
  }
});
