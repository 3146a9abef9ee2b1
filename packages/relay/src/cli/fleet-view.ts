// What `fleet watch` draws: the shared fleet model (the dashboard's too), rendered as a
// fixed-width table. Pure, so it is tested without a terminal.

import { FleetModel, formatBytes } from '@outpost/shared';

export class FleetView extends FleetModel {
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
