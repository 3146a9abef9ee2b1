// The agent's Prometheus registry: its own metrics and the process metrics it keeps in place of
// prom-client's defaults, as a scrape sees them.

import t from 'tap';
import { AgentMetrics } from '../../packages/agent/dist/serve/agent-metrics.js';

/** name{labels} → value, from the Prometheus text format. */
function parse(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]));
  }
  return values;
}

t.test('process metrics are read at each scrape, under the usual names', async (t) => {
  const metrics = new AgentMetrics();
  const first = parse(await metrics.registry.metrics());
  const cpu = first.get('outpost_agent_process_cpu_seconds_total')!;
  t.ok(cpu > 0, 'CPU time spent so far');
  t.ok(first.get('outpost_agent_process_resident_memory_bytes')! > 10e6, 'RSS in bytes');
  t.ok(first.get('outpost_agent_nodejs_heap_size_used_bytes')! <= first.get('outpost_agent_nodejs_heap_size_total_bytes')!, 'heap used within heap total');
  t.ok(first.get('outpost_agent_nodejs_external_memory_bytes')! > 0);
  const start = first.get('outpost_agent_process_start_time_seconds')!;
  t.ok(Math.abs(start - (Date.now() / 1000 - process.uptime())) <= 1, 'start time since the epoch');

  // Burn some CPU: the counter moves by about as much, and is not added up twice.
  const until = process.cpuUsage();
  while (process.cpuUsage(until).user < 50_000);
  const second = parse(await metrics.registry.metrics());
  const grown = second.get('outpost_agent_process_cpu_seconds_total')! - cpu;
  t.ok(grown >= 0.05 && grown < 1, `CPU counter grew by ${grown.toFixed(3)} s`);
  t.equal(second.get('outpost_agent_process_start_time_seconds'), start, 'start time stays put');
});

t.test('inference, batch and queue metrics per model', async (t) => {
  let depth = 3;
  const metrics = new AgentMetrics(() => [{ model: 'cls', depth }]);
  metrics.recordInference('cls', 0.002, 'ok');
  metrics.recordInference('cls', 0.02, 'error');
  metrics.recordInference('cls', 0.0001, 'rejected');
  metrics.batchSize.observe({ model: 'cls' }, 4);
  metrics.threadsLost.inc({ model: 'cls' });
  const m = parse(await metrics.registry.metrics());
  t.equal(m.get('outpost_agent_inference_requests_total{model="cls"}'), 2);
  t.equal(m.get('outpost_agent_inference_errors_total{model="cls"}'), 1);
  t.equal(m.get('outpost_agent_inference_rejected_total{model="cls"}'), 1, 'a refused request is counted apart');
  t.equal(m.get('outpost_agent_inference_duration_seconds_bucket{le="0.0025",model="cls"}'), 1);
  t.equal(m.get('outpost_agent_inference_duration_seconds_count{model="cls"}'), 2);
  t.equal(m.get('outpost_agent_batch_size_sum{model="cls"}'), 4);
  t.equal(m.get('outpost_agent_session_threads_lost_total{model="cls"}'), 1);
  t.equal(m.get('outpost_agent_queue_depth{model="cls"}'), 3);
  depth = 0;
  t.equal(parse(await metrics.registry.metrics()).get('outpost_agent_queue_depth{model="cls"}'), 0, 'queue depth is read at scrape time');
  t.match(metrics.registry.contentType, /^text\/plain/);
});
