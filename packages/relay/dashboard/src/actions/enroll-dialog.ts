// Enroll a device (admins): makes a one-time enrollment token and shows it once, with the
// agent's enroll command ready to copy.

import { api } from '../api.js';
import { field, openDialog } from '../dialog.js';
import { el } from '../dom.js';
import { parseLabels } from '@outpost/shared/browser';

interface EnrollToken {
  token: string;
  caFingerprint?: string;
  expiresAt: string;
}

export function enrollDialog(): Promise<boolean> {
  const labels = el('input', { name: 'labels', placeholder: 'site=lab,camera=front' });
  const ttl = el('select', { name: 'ttl' }, [['15 minutes', 900], ['1 hour', 3600], ['1 day', 86_400], ['7 days', 604_800]].map(([t, s]) => el('option', { value: String(s) }, String(t))));
  const own = el('input', { type: 'checkbox', name: 'allowDeviceLabels' });
  return openDialog({
    id: 'enroll',
    title: 'Enroll a device',
    submitLabel: 'Make token',
    body: [
      el('p', { class: 'muted' }, 'A single-use token for one device. It is shown once.'),
      field('Labels', labels, 'the device gets these; selector deployments and jobs use them'),
      field('Valid for', ttl),
      el('label', { class: 'check' }, own, ' let the device add labels of its own (the token’s still win)'),
    ],
    submit: async () => {
      const res = await api<EnrollToken>('POST', '/v1/tokens/enroll', { ttlSeconds: Number(ttl.value), labels: parseLabels(labels.value), allowDeviceLabels: own.checked });
      const command = `outpost-agent enroll --relay ${location.origin} --token ${res.token}`;
      const copy = el('button', { type: 'button', class: 'secondary', id: 'enroll-copy' }, 'Copy');
      copy.addEventListener('click', () => {
        void navigator.clipboard?.writeText(command).then(() => (copy.textContent = 'Copied'), () => (copy.textContent = 'Select and copy'));
      });
      return [
        el('p', {}, 'On the device, run:'),
        el('pre', { class: 'command', id: 'enroll-command' }, command),
        copy,
        el('p', { class: 'muted' }, `Expires ${new Date(res.expiresAt).toLocaleString([], { hour12: false })}. ${res.caFingerprint ? 'It carries the relay CA’s fingerprint: the device checks it is talking to this relay.' : 'The relay runs with --insecure: the device cannot check it is talking to this relay.'} This token is not shown again.`),
      ];
    },
  });
}
