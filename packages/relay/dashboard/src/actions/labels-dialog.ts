// Labels of one device (admins): edit them as `k=v, k2=v2`; what is gone is removed. Selector
// deployments and jobs follow the new labels.

import { formatLabels, parseLabels, type DeviceSummary } from '@outpost/shared/browser';
import { api } from '../api.js';
import { field, openDialog } from '../dialog.js';
import { el } from '../dom.js';

export function labelsDialog(d: DeviceSummary): Promise<boolean> {
  const input = el('input', { name: 'labels', id: 'labels-input', value: formatLabels(d.labels), placeholder: 'site=lab,camera=front' });
  return openDialog({
    id: 'labels',
    title: `Labels of ${d.name}`,
    submitLabel: 'Save',
    body: [field('Labels', input, 'selector deployments and jobs that match start or stop reaching this device')],
    submit: async () => {
      const next = parseLabels(input.value);
      const changes: Record<string, string | null> = { ...next };
      for (const k of Object.keys(d.labels)) if (!(k in next)) changes[k] = null;
      await api('PATCH', `/v1/devices/${encodeURIComponent(d.id)}/labels`, { labels: changes });
    },
  });
}
