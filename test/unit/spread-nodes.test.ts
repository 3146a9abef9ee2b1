// Enrolling devices get a cluster's nodes in an order of their own: always the same list
// rotated, the same for a device each time, and spread evenly over a fleet.

import t from 'tap';
import { spreadNodes } from '../../packages/relay/dist/api/enroll.js';

t.test('a rotation per device, spread over the fleet', async (t) => {
  const nodes = ['mqtt://a:1883', 'mqtt://b:1883', 'mqtt://c:1883'];
  const firsts = new Map<string, number>();
  const odd: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const id = `dev_${i.toString(16).padStart(12, '0')}`;
    const order = spreadNodes(nodes, id);
    const k = nodes.indexOf(order[0]!);
    if (JSON.stringify(order) !== JSON.stringify([...nodes.slice(k), ...nodes.slice(0, k)]) || JSON.stringify(spreadNodes(nodes, id)) !== JSON.stringify(order)) odd.push(id);
    firsts.set(order[0]!, (firsts.get(order[0]!) ?? 0) + 1);
  }
  t.same(odd, [], 'every order is a rotation of the list, the same for a device each time');
  for (const n of nodes) t.ok((firsts.get(n) ?? 0) > 800, `${n} comes first for about a third (${firsts.get(n)})`);
  t.same(spreadNodes(['mqtt://only:1883'], 'dev_1'), ['mqtt://only:1883']);
  t.same(spreadNodes([], 'dev_1'), []);
});
