// Deploy (deployers): a model version to named devices or a selector, with the rollout flags of
// `outpost-relay deploy` (strategy, batch, canary, failure threshold, health window, allow
// empty, force). Sends the body the CLI sends; the relay's refusal shows in the dialog.

import { parseLabels, type DeploymentSummary } from '@outpost/shared/browser';
import type { ModelList, ModelVersions } from '../answers.js';
import { api, get } from '../api.js';
import { field, openDialog, toast } from '../dialog.js';
import { el } from '../dom.js';
import { fleet } from '../stream.js';

/** `n` or `n%`, as the CLI's --batch and --failure-threshold take them. */
function countOrPercent(text: string, what: string): number | string | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  if (/^\d+%$/.test(t)) return t;
  if (/^\d+$/.test(t)) return Number(t);
  throw new Error(`${what}: use a number of devices or a percentage, like 5 or 25%`);
}

export interface DeployPreset {
  /** `key=value` to start the selector with (the fleet page's label filter). */
  selector?: string | null;
  device?: string;
}

export async function deployDialog(preset: DeployPreset = {}): Promise<boolean> {
  const { models } = await get<ModelList>('/v1/models');
  const model = el('select', { name: 'model', id: 'deploy-model' }, models.map((m) => el('option', { value: m.name }, m.name)));
  const version = el('select', { name: 'version', id: 'deploy-version' });
  // The versions there are (deleted and pruned ones are not), newest first.
  const fillVersions = async () => {
    const name = model.value;
    version.replaceChildren(el('option', { value: '' }, 'latest'));
    if (!name) return;
    const { versions } = await get<ModelVersions>(`/v1/models/${encodeURIComponent(name)}`);
    if (model.value !== name) return;
    version.append(...versions.map((v) => v.version).sort((a, b) => b - a).map((v) => el('option', { value: String(v) }, String(v))));
  };
  model.addEventListener('change', () => void fillVersions().catch(() => undefined));
  await fillVersions();

  const byDevice = preset.device !== undefined || !preset.selector;
  const targetKind = el('select', { name: 'target', id: 'deploy-target-kind' }, el('option', { value: 'devices', selected: byDevice }, 'named devices'), el('option', { value: 'selector', selected: !byDevice }, 'every device with labels (now and later)'));
  // A preset device by its id: a name may be shared by several devices.
  const devices = el('input', { name: 'devices', id: 'deploy-devices', placeholder: 'names or ids, comma-separated', value: preset.device ?? '', list: 'deploy-device-names' });
  const names = el('datalist', { id: 'deploy-device-names' }, [...fleet.devices.values()].slice(0, 500).map((d) => el('option', { value: d.name })));
  const selector = el('input', { name: 'selector', id: 'deploy-selector', placeholder: 'site=lab', value: preset.selector ?? '' });
  const devicesField = field('Devices', devices);
  const selectorField = field('Selector', selector);
  const showTarget = () => {
    devicesField.hidden = targetKind.value !== 'devices';
    selectorField.hidden = targetKind.value !== 'selector';
  };
  targetKind.addEventListener('change', showTarget);
  showTarget();

  const strategy = el('select', { name: 'strategy', id: 'deploy-strategy' }, el('option', { value: 'all' }, 'all at once'), el('option', { value: 'rolling' }, 'rolling, in batches'));
  const batch = el('input', { name: 'batch', id: 'deploy-batch', placeholder: '1, or 25%' });
  const canary = el('input', { name: 'canary', id: 'deploy-canary', type: 'number', min: '0', placeholder: '0' });
  const threshold = el('input', { name: 'failureThreshold', id: 'deploy-failure-threshold', placeholder: 'staged: 0' });
  const window = el('input', { name: 'healthWindow', id: 'deploy-health-window', type: 'number', min: '0', max: '86400', placeholder: 'seconds' });
  const batchField = field('Batch', batch, 'devices per batch');
  strategy.addEventListener('change', () => (batchField.hidden = strategy.value !== 'rolling'));
  batchField.hidden = true;
  const allowEmpty = el('input', { type: 'checkbox', name: 'allowEmpty', id: 'deploy-allow-empty' });
  const force = el('input', { type: 'checkbox', name: 'force', id: 'deploy-force' });

  if (models.length === 0) {
    return openDialog({
      id: 'deploy',
      title: 'Deploy',
      body: [el('p', {}, 'No models yet. Push one first: outpost-relay models push FILE.onnx --name NAME')],
      submitLabel: 'OK',
      submit: async () => undefined,
    });
  }

  return openDialog({
    id: 'deploy',
    title: 'Deploy a model',
    submitLabel: 'Deploy',
    body: [
      el('div', { class: 'row' }, field('Model', model), field('Version', version)),
      field('Target', targetKind),
      devicesField,
      names,
      selectorField,
      el('div', { class: 'row' }, field('Strategy', strategy), batchField),
      el('div', { class: 'row' }, field('Canary', canary, 'release to the first N, then the rest'), field('Failure threshold', threshold, 'failed devices tolerated before it rolls back')),
      field('Health window', window, 'a device counts as done after staying healthy this long'),
      el('label', { class: 'check' }, allowEmpty, ' create it although no device matches yet'),
      el('label', { class: 'check' }, force, ' deploy a version that failed its self-test at push'),
    ],
    submit: async () => {
      const body: Record<string, unknown> = { model: model.value };
      if (version.value) body.version = Number(version.value);
      if (targetKind.value === 'devices') {
        const refs = devices.value.split(',').map((s) => s.trim()).filter(Boolean);
        if (refs.length === 0) throw new Error('name at least one device, or choose a selector');
        body.devices = refs;
      } else {
        const labels = parseLabels(selector.value);
        if (Object.keys(labels).length === 0) throw new Error('a selector needs at least one key=value');
        body.selector = labels;
      }
      const s: Record<string, unknown> = {};
      if (strategy.value === 'rolling') s.kind = 'rolling';
      const b = countOrPercent(batch.value, 'batch');
      if (b !== undefined && strategy.value === 'rolling') s.batch = b;
      if (canary.value !== '') s.canary = Number(canary.value);
      const f = countOrPercent(threshold.value, 'failure threshold');
      if (f !== undefined) s.failureThreshold = f;
      if (window.value !== '') s.healthWindowSeconds = Number(window.value);
      if (Object.keys(s).length) body.strategy = s;
      if (allowEmpty.checked) body.allowEmpty = true;
      if (force.checked) body.force = true;
      const created = await api<DeploymentSummary & { notice?: string }>('POST', '/v1/deployments', body);
      // The relay picked another version than asked (the newest was rolled back): said, as the CLI says it.
      if (created.notice) toast(created.notice);
      fleet.addDeployments([created]);
      location.hash = `#/deployments/${encodeURIComponent(created.id)}`;
    },
  });
}
