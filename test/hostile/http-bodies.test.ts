// Strangers on the HTTP ports: bodies larger than any legal request, many unfinished bodies at
// once, headers sent a byte at a time, and junk requests during a rollout's health window.
// Memory stays bounded, every malformed request gets a 4xx that names the problem, and junk
// cannot roll a good rollout back.

import t from 'tap';
import fc from 'fast-check';
import { connect } from 'node:net';
import { join } from 'node:path';
import { LINEAR_REQUEST, fleetStillWorks, relayWithBystander, rssMiB } from '../helpers/hostile.js';
import { FIXTURES } from '../helpers/programs.js';

/**
 * Opens a socket and sends `head`; resolves with the socket, the first bytes that came back (or ''
 * if it closed unanswered) and everything that came back until it closed.
 */
function rawHttp(url: string, head: string, body?: Buffer): Promise<{ first: Promise<string>; answer: Promise<string>; write(s: string): void; end(): void }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(head);
      if (body) socket.write(body);
      let text = '';
      socket.setEncoding('latin1').on('data', (d: string) => (text += d));
      const answer = new Promise<string>((r) => socket.once('close', () => r(text)));
      const first = new Promise<string>((r) => {
        socket.once('data', (d: string) => r(d));
        socket.once('close', () => r(text));
      });
      resolve({ first, answer, write: (s) => void (socket.destroyed || socket.write(s)), end: () => socket.destroy() });
    });
    socket.on('error', () => {});
    socket.once('error', reject);
  });
}

t.test('hostile HTTP at the agent and the relay', async (t) => {
  const { relay, agent, device } = await relayWithBystander(t);
  const push = await relay.cli('models', 'push', join(FIXTURES, 'rowsum.onnx'), '--name', 'rowsum');
  t.equal(push.code, 0, push.stderr);
  t.equal((await relay.cli('deploy', 'rowsum', '--device', device.deviceId, '--wait')).code, 0);
  const port = new URL(agent.httpUrl);

  await t.test('a body larger than any legal request to the model is refused before it is read', async (t) => {
    const res = await rawHttp(agent.httpUrl, `POST /v2/models/linear/infer HTTP/1.1\r\nHost: ${port.host}\r\nContent-Type: application/json\r\nContent-Length: ${50 * 1024 * 1024}\r\n\r\n`);
    const answer = await res.answer;
    t.match(answer, /^HTTP\/1\.1 413/, '413 at once');
    t.match(answer, /the most a request for 64 rows of this model's inputs can need \(inputs x: FP32\[-1,4\]\)/, 'the message says why');
  });

  await t.test('six unfinished 60 MiB bodies: the memory budget holds; past it 429 at once', async (t) => {
    const before = rssMiB(agent.proc.pid!);
    const head = `POST /v2/models/rowsum/infer HTTP/1.1\r\nHost: ${port.host}\r\nContent-Type: application/json\r\nContent-Length: ${60 * 1024 * 1024}\r\n\r\n`;
    const socks: Array<Awaited<ReturnType<typeof rawHttp>>> = [];
    for (let i = 0; i < 6; i++) socks.push(await rawHttp(agent.httpUrl, head, Buffer.alloc(20 * 1024 * 1024, 0x20)));
    // Order of events, not a timer: the four refusals come back before the stalled two are ended
    // by the body idle timeout (10 s), which answers nothing.
    const order: string[] = [];
    const fourRefused = new Promise<void>((done) => {
      for (const s of socks)
        void s.first.then((a) => {
          order.push(/^HTTP\/1\.1 429/.test(a) ? '429' : a.slice(0, 12) || 'closed');
          if (order.filter((o) => o === '429').length === 4 || order.length === 6) done();
        });
    });
    await fourRefused;
    const grown = rssMiB(agent.proc.pid!) - before;
    t.same(order.slice(0, 4), ['429', '429', '429', '429'], 'two 60 MiB bodies fill the 128 MiB budget; the other four are refused before either ends');
    t.ok(grown < 120, `agent RSS grew by ${grown.toFixed(0)} MiB (it grew by 368 MiB before the budget)`);
    // The two that were taken stall: the body idle timeout ends them and gives the budget back.
    const all = await Promise.all(socks.map((s) => s.answer));
    t.equal(all.length, 6, 'every unfinished body was closed');
    t.equal((await agent.infer('linear', LINEAR_REQUEST)).status, 200, 'and the agent serves');
  });

  await t.test('headers sent a byte a second are cut off (agent and relay)', async (t) => {
    for (const url of [agent.httpUrl, relay.httpUrl]) {
      // A slowloris: the first line, then a header byte every second, never the blank line.
      const res = await rawHttp(url, 'GET /v2/health/live HTTP/1.1\r\nX-Slow: ');
      const trickle = setInterval(() => res.write('a'), 1000);
      const answer = await res.answer;
      clearInterval(trickle);
      t.match(answer, /^(HTTP\/1\.1 408|$)/, `${url}: the connection was closed (${answer.slice(0, 12) || 'no answer'})`);
    }
  });

  await t.test('malformed requests answer 4xx, never 500', async (t) => {
    const bodies: Array<[string, unknown]> = [
      ['zero-element shape', { inputs: [{ name: 'x', shape: [0, 4], datatype: 'FP32', data: [] }] }],
      ['absurd shape', { inputs: [{ name: 'x', shape: [1e15, 4], datatype: 'FP32', data: [] }] }],
      ['outputs not an array', { inputs: LINEAR_REQUEST.inputs, outputs: { name: 'y' } }],
      ['outputs of strings', { inputs: LINEAR_REQUEST.inputs, outputs: ['y'] }],
      ['parameters a string', { inputs: LINEAR_REQUEST.inputs, parameters: 'binary' }],
      ['output parameters null', { inputs: LINEAR_REQUEST.inputs, outputs: [{ name: 'y', parameters: null }] }],
      ['id an object', { id: { a: 1 }, inputs: LINEAR_REQUEST.inputs }],
    ];
    for (const [what, body] of bodies) {
      const res = await agent.infer<{ code: string; error: string }>('linear', body);
      t.equal(res.status, 400, `${what}: ${res.body.error}`);
    }
    // Any JSON at all, in any place of the request: never a 500.
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue(),
          fc.record({ inputs: fc.array(fc.record({ name: fc.constantFrom('x', 'y', ''), shape: fc.array(fc.oneof(fc.integer({ min: -2, max: 6 }), fc.double()), { maxLength: 3 }), datatype: fc.constantFrom('FP32', 'INT64', 'BYTES', 'nope'), data: fc.array(fc.jsonValue(), { maxLength: 8 }) }, { requiredKeys: [] }), { maxLength: 3 }), outputs: fc.jsonValue(), parameters: fc.jsonValue(), id: fc.jsonValue() }, { requiredKeys: [] }),
        ),
        async (body) => {
          const res = await agent.infer('linear', body);
          return res.status < 500;
        },
      ),
      { numRuns: 150 },
    );
    t.pass('150 random bodies, no 500');
  });

  await t.test('junk requests during a health window do not roll a good rollout back', async (t) => {
    const v2 = await relay.cli('models', 'push', join(FIXTURES, 'linear-v2.onnx'), '--name', 'linear');
    t.equal(v2.code, 0, v2.stderr);
    let junk = 0;
    let stop = false;
    const junkLoop = (async () => {
      while (!stop) {
        const res = await agent.infer('linear', { inputs: [{ name: 'x', shape: [0, 4], datatype: 'FP32', data: [] }] }).catch(() => ({ status: 0 }));
        if (res.status === 400) junk++;
      }
    })();
    const dep = await relay.cli('deploy', 'linear:2', '--device', device.deviceId, '--strategy', 'rolling', '--health-window', '3s', '--failure-threshold', '0', '--wait', '--json');
    stop = true;
    await junkLoop;
    t.equal(dep.code, 0, `the rollout succeeded (${dep.stderr.trim()})`);
    t.equal((JSON.parse(dep.stdout) as { state: string }).state, 'succeeded');
    t.ok(junk > 50, `${junk} junk requests answered 400 during the window`);
  });

  await t.test('afterwards', async (t) => fleetStillWorks(t, relay, agent, 'linear', LINEAR_REQUEST));
});
