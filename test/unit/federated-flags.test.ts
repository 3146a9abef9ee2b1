// `jobs submit --federated`'s flags as the request they make, each mistake refused with the
// flag to fix, and how a round's attempt reads in one line.

import t from 'tap';
import { federatedBody, roundLine } from '../../packages/relay/dist/cli/federated.js';

const base = { federated: true, nodes: 1, rounds: 3, minClients: 2, initialModel: 'fed:2' };

t.test('the request a federated job makes', async (t) => {
  t.equal(federatedBody({ nodes: 1 }), undefined, 'not federated: no part');
  t.same(federatedBody(base), { rounds: 3, minClients: 2, initialModel: { name: 'fed', version: 2 } });
  t.same(federatedBody({ ...base, initialModel: 'fed' })!.initialModel, { name: 'fed' }, 'the latest version when none is named');
  t.same(
    federatedBody({ ...base, fraction: 0.5, roundDeadline: 90_000, strategy: 'fedprox', proximalMu: 0.01, roundAttempts: 2, deploySelector: { pool: 'edge' }, deployStrategy: 'rolling', deployBatch: '25%', deployCanary: 1, deployHealthWindow: 30_000 }),
    {
      rounds: 3,
      minClients: 2,
      initialModel: { name: 'fed', version: 2 },
      fraction: 0.5,
      roundDeadlineSeconds: 90,
      strategy: 'fedprox',
      proximalMu: 0.01,
      maxAttempts: 2,
      deploy: { selector: { pool: 'edge' }, strategy: { kind: 'rolling', batch: '25%', canary: 1, healthWindowSeconds: 30 } },
    },
  );
  t.same(federatedBody({ ...base, deploySelector: { pool: 'edge' } })!.deploy, { selector: { pool: 'edge' } }, 'a rollout with the default strategy');
});

t.test('each mistake names its flag', async (t) => {
  for (const [flags, message] of [
    [{ nodes: 1, rounds: 3 }, /--rounds goes with --federated/],
    [{ nodes: 1, deployStrategy: 'rolling' }, /--deploy-strategy goes with --federated/],
    [{ federated: true, nodes: 1 }, /a federated job needs --rounds R, --min-clients K, --initial-model NAME\[:VERSION\]/],
    [{ ...base, initialModel: undefined }, /a federated job needs --initial-model/],
    [{ ...base, nodes: 2 }, /drop --nodes/],
    [{ ...base, deployBatch: 2 }, /--deploy-strategy, --deploy-batch, --deploy-canary and --deploy-health-window go with --deploy-selector/],
    [{ ...base, deploySelector: { a: 'b' }, deployBatch: 2 }, /--deploy-batch goes with --deploy-strategy rolling/],
    [{ ...base, deploySelector: { a: 'b' }, deployCanary: '10%' }, /--deploy-canary takes a number of devices/],
    [{ ...base, initialModel: 'not a name!' }, /--initial-model: "not a name!" is not NAME or NAME:VERSION/],
  ] as const) {
    t.throws(() => federatedBody(flags as Parameters<typeof federatedBody>[0]), message);
  }
});

t.test('a round in one line', async (t) => {
  const r = { round: 2, attempt: 1, clients: [{ deviceId: 'dev_a', rank: 3 }, { deviceId: 'dev_b', rank: 4 }], participants: [], dropped: [], metrics: {}, globalSha256: 'a'.repeat(64), resultSha256: null, startedAt: null, deadlineAt: null, finishedAt: null, error: null };
  t.equal(roundLine({ ...r, state: 'running' }, 5), 'round 2/5: asked 2 client(s): dev_a, dev_b');
  t.equal(
    roundLine({ ...r, state: 'aggregated', participants: [{ deviceId: 'dev_a', numExamples: 10 }], metrics: { num_examples: 10, loss: 0.123456 }, dropped: [{ client: 'dev_b', reason: 'no update by the round deadline' }] }, 5),
    'round 2/5: averaged 1 update(s) (num_examples=10 loss=0.1235); dropped dev_b (no update by the round deadline)',
  );
  t.equal(roundLine({ ...r, attempt: 2, state: 'retried', error: '0 good updates of 2 asked; the round needs 2' }, 5), 'round 2/5 (attempt 2): retried: 0 good updates of 2 asked; the round needs 2');
  t.equal(roundLine({ ...r, state: 'canceled' }, 5), 'round 2/5: canceled');
});
