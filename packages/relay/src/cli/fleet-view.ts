// The state `fleet watch` draws: devices and deployments, kept current by stream messages,
// and rendered as a fixed-width table. Pure, so it is tested without a terminal.

import type { DeploymentSummary, DeviceSummary, StreamMessage } from '@outpost/shared';
import { formatBytes } from '@outpost/shared';

export class FleetView {
  readonly devices = new Map<string, DeviceSummary>();
  readonly deployments = new Map<string, DeploymentSummary>();
  lastSeq = 0;

  apply(m: StreamMessage): void {
    this.lastSeq = m.seq;
    switch (m.type) {
      case 'snapshot':
        this.devices.clear();
        this.deployments.clear();
        for (const d of m.devices) this.devices.set(d.id, d);
        for (const d of m.deployments) this.deployments.set(d.id, d);
        break;
      case 'device.enrolled':
      case 'device.updated':
        this.devices.set(m.device.id, { ...this.devices.get(m.device.id), ...m.device });
        break;
      case 'device.removed':
        this.devices.delete(m.deviceId);
        break;
      case 'device.status': {
        const d = this.devices.get(m.deviceId);
        if (d) Object.assign(d, { online: m.online, lastSeen: m.lastSeen });
        break;
      }
      case 'device.health': {
        const d = this.devices.get(m.deviceId);
        if (d) Object.assign(d, { health: m.health, lastSeen: m.ts });
        break;
      }
      case 'device.models': {
        const d = this.devices.get(m.deviceId);
        if (d) d.models = m.models;
        break;
      }
      case 'device.problem': {
        const d = this.devices.get(m.deviceId);
        if (d) d.problem = m.problem;
        break;
      }
      case 'deployment.created':
        this.deployments.set(m.deployment.id, m.deployment);
        break;
      case 'deployment.progress': {
        const d = this.deployments.get(m.deploymentId);
        const r = d?.devices.find((x) => x.deviceId === m.deviceId);
        if (d && r) {
          d.counts[r.state] = (d.counts[r.state] ?? 1) - 1;
          if (d.counts[r.state] === 0) delete d.counts[r.state];
          Object.assign(r, { state: m.state, reason: m.reason });
          d.counts[m.state] = (d.counts[m.state] ?? 0) + 1;
        }
        break;
      }
      case 'deployment.state': {
        const d = this.deployments.get(m.deploymentId);
        if (d) d.state = m.state;
        break;
      }
    }
  }

  /** The table as lines of at most `width` characters, at most `height` lines. */
  render(width: number, height: number, status: string, now = Date.now()): string[] {
    const devices = [...this.devices.values()].sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name));
    const online = devices.filter((d) => d.online).length;
    const rows = devices.map((d) => {
      const h = d.health;
      const p50s = h ? Object.values(h.models).map((m) => m.p50Ms).filter((v): v is number => v !== null) : [];
      const seen = d.lastSeen ? `${Math.max(0, Math.round((now - Date.parse(d.lastSeen)) / 1000))}s ago` : 'never';
      return [
        d.name,
        d.id,
        `${d.online ? 'online' : 'offline'}${d.problem ? `, ${d.problem.kind}` : ''}`,
        d.models.map((m) => `${m.name}:${m.version} ${m.state}`).join(', ') || '-',
        h ? `${h.cpuPercent.toFixed(0)}%` : '-',
        h ? formatBytes(h.memory.rssBytes) : '-',
        p50s.length ? `${Math.max(...p50s)} ms` : '-',
        seen,
      ];
    });
    const header = ['NAME', 'ID', 'STATE', 'MODELS', 'CPU', 'RSS', 'P50', 'LAST SEEN'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    const fit = (s: string) => (s.length > width ? `${s.slice(0, Math.max(0, width - 1))}…` : s);

    const active = [...this.deployments.values()].filter((d) => d.state === 'in-progress');
    const footer = active.map((d) => `deploying ${d.model}:${d.version} (${d.id}): ${Object.entries(d.counts).map(([s, n]) => `${n} ${s}`).join(', ')}`);
    const top = [`outpost fleet — ${devices.length} devices, ${online} online — ${status}`, '', line(header)];
    const room = Math.max(0, height - top.length - (footer.length ? footer.length + 1 : 0));
    const body = rows.slice(0, room).map(line);
    if (rows.length > room && room > 0) body[room - 1] = `… and ${rows.length - room + 1} more (make the window taller)`;
    return [...top, ...body, ...(footer.length ? ['', ...footer] : [])].slice(0, height).map(fit);
  }
}
