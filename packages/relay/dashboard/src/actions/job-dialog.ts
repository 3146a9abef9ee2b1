// Submit a job (deployers): a bundle (the job folder as .tar.gz: `tar czf job.tgz -C DIR .`),
// a target, the command and the options of `outpost-relay jobs submit`. The bundle goes to
// /v1/bundles and the job to /v1/jobs, as the CLI sends them.

import type { JobSummary } from '@outpost/shared/browser';
import type { Target } from '../answers.js';
import { api, get } from '../api.js';
import { field, openDialog } from '../dialog.js';
import { el } from '../dom.js';
import { fleet } from '../stream.js';

export async function submitJobDialog(): Promise<boolean> {
  const { targets } = await get<{ targets: Target[] }>('/v1/targets');
  const bundle = el('input', { type: 'file', name: 'bundle', id: 'job-bundle', accept: '.tgz,.tar.gz,application/gzip', required: true });
  const target = el('input', { name: 'target', id: 'job-target', value: 'local', list: 'job-targets', required: true });
  const list = el('datalist', { id: 'job-targets' }, targets.filter((t) => t.trains).map((t) => el('option', { value: t.name }, t.deviceName ?? t.name)));
  const command = el('input', { name: 'command', id: 'job-command', placeholder: 'node train.js', required: true });
  const nodes = el('input', { name: 'nodes', id: 'job-nodes', type: 'number', min: '1', max: '1000', value: '1' });
  const env = el('textarea', { name: 'env', id: 'job-env', rows: 2, placeholder: 'EPOCHS=20' });
  const dataset = el('input', { name: 'dataset', id: 'job-dataset', placeholder: 'images' });
  const timeout = el('input', { name: 'timeout', id: 'job-timeout', type: 'number', min: '1', placeholder: 'minutes' });
  const register = el('input', { name: 'registerModel', id: 'job-register', placeholder: 'model name' });
  const output = el('input', { name: 'output', id: 'job-output', placeholder: 'model.onnx' });
  return openDialog({
    id: 'job-submit',
    title: 'Submit a job',
    submitLabel: 'Submit',
    body: [
      field('Bundle', bundle, 'the job folder as .tar.gz: tar czf job.tgz -C DIR .'),
      field('Target', target, 'local, a device, or a selector like site=lab'),
      list,
      field('Command', command),
      el('div', { class: 'row' }, field('Nodes', nodes), field('Timeout', timeout, 'minutes')),
      field('Environment', env, 'one KEY=VALUE per line'),
      field('Dataset', dataset, 'a dataset on the target, at OUTPOST_DATA_DIR'),
      el('div', { class: 'row' }, field('Register model', register), field('From output', output, 'relative to OUTPOST_OUTPUT_DIR')),
    ],
    submit: async () => {
      const file = bundle.files?.[0];
      if (!file) throw new Error('choose the bundle (.tar.gz of the job folder)');
      const vars: Record<string, string> = {};
      for (const line of env.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
        const eq = line.indexOf('=');
        if (eq <= 0) throw new Error(`environment "${line}": use KEY=VALUE`);
        vars[line.slice(0, eq)] = line.slice(eq + 1);
      }
      if (Boolean(register.value) !== Boolean(output.value)) throw new Error('a model to register and the output file go together');
      const uploaded = await api<{ sha256: string }>('POST', '/v1/bundles', file);
      const n = Number(nodes.value || 1);
      const job = await api<JobSummary>('POST', '/v1/jobs', {
        bundleSha256: uploaded.sha256,
        target: target.value.trim(),
        command: command.value,
        ...(n > 1 ? { nodes: n } : {}),
        env: vars,
        ...(dataset.value ? { dataset: dataset.value.trim() } : {}),
        ...(timeout.value ? { timeoutSeconds: Number(timeout.value) * 60 } : {}),
        ...(register.value ? { registerModel: { name: register.value.trim(), output: output.value.trim() } } : {}),
      });
      fleet.addJobs([job]);
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    },
  });
}
