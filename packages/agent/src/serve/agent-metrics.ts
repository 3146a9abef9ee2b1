// Prometheus metrics of the agent: requests, errors and latency per model, model load time,
// queue depth and batch sizes, and the process's own (CPU, memory).

import { Counter, Gauge, Histogram, Registry } from './prom.js';
import { registerProcessMetrics } from './process-metrics.js';
import type { InferenceOutcome } from '../runtime/model-stats.js';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'model'>;
  readonly errors: Counter<'model'>;
  readonly rejected: Counter<'model'>;
  readonly duration: Histogram<'model'>;
  readonly modelLoad: Histogram<'model'>;
  readonly batchSize: Histogram<'model'>;
  readonly threadsLost: Counter<'model'>;

  /** `queueDepths` is read at each scrape: requests waiting per model. */
  constructor(queueDepths: () => Array<{ model: string; depth: number }> = () => []) {
    const registers = [this.registry];
    registerProcessMetrics(this.registry, 'outpost_agent_');
    this.requests = new Counter({ name: 'outpost_agent_inference_requests_total', help: 'Inference requests, by model', labelNames: ['model'], registers });
    this.errors = new Counter({ name: 'outpost_agent_inference_errors_total', help: "Inference requests that failed on the device's side (5xx), by model", labelNames: ['model'], registers });
    this.rejected = new Counter({ name: 'outpost_agent_inference_rejected_total', help: 'Inference requests refused before the model ran (malformed: 4xx; queue full: 429), by model', labelNames: ['model'], registers });
    this.duration = new Histogram({
      name: 'outpost_agent_inference_duration_seconds',
      help: 'Inference latency as the server sees it, by model',
      labelNames: ['model'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.modelLoad = new Histogram({
      name: 'outpost_agent_model_load_seconds',
      help: 'Time to probe, load and swap in a model version',
      labelNames: ['model'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'outpost_agent_batch_size',
      help: 'Rows per onnxruntime run (more than 1 when dynamic batching merged requests), by model',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers,
    });
    this.threadsLost = new Counter({ name: 'outpost_agent_session_threads_lost_total', help: 'Session threads that died and were replaced (or not, past 3 a minute), by model', labelNames: ['model'], registers });
    new Gauge({
      name: 'outpost_agent_queue_depth',
      help: 'Inference requests waiting for a run, by model',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const { model, depth } of queueDepths()) this.set({ model }, depth);
      },
    });
  }

  recordInference(model: string, seconds: number, outcome: InferenceOutcome): void {
    if (outcome === 'rejected') {
      this.rejected.inc({ model });
      return;
    }
    this.requests.inc({ model });
    if (outcome === 'error') this.errors.inc({ model });
    this.duration.observe({ model }, seconds);
  }
}
