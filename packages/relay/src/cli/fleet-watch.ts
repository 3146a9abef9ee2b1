// outpost-relay fleet watch: a live table of the fleet from the WebSocket stream, redrawn in
// place (and on resize); `--json` prints the stream's messages as JSON lines instead.
// It reconnects by itself with `?since=` the last message it saw.

import type { Command } from 'commander';
import { WebSocket } from 'ws';
import { STREAM_CLOSE, examples, isErrorBody, type StreamMessage } from '@outpost/shared';
import { relayApi, type ClientOptions } from './client.js';
import { clientOptions } from './options.js';
import { FleetView } from './fleet-view.js';

const ESC = '\x1b[';

export function fleetCommand(program: Command): void {
  const fleet = program.command('fleet').description('watch the fleet live').addHelpText('after', examples('outpost-relay fleet watch'));
  clientOptions(
    fleet
      .command('watch')
      .description('a live table of devices, models, CPU, memory and latency (Ctrl-C to stop)')
      .addHelpText('after', examples('outpost-relay fleet watch', 'outpost-relay fleet watch --json | jq -c \'select(.type == "device.health")\'')),
  ).action(
    async (opts: ClientOptions) => {
      const api = relayApi(opts);
      const view = new FleetView();
      const tty = !opts.json && process.stdout.isTTY;
      let status = 'connecting';
      let drawPending = false;

      const draw = () => {
        drawPending = false;
        if (!tty) return;
        const lines = view.render(process.stdout.columns || 100, process.stdout.rows || 30, status);
        process.stdout.write(`${ESC}H${lines.map((l) => `${l}${ESC}K`).join('\n')}${ESC}J`);
      };
      const scheduleDraw = () => {
        if (!drawPending) {
          drawPending = true;
          setTimeout(draw, 50); // at most 20 redraws a second, whatever the event rate
        }
      };
      if (tty) {
        process.stdout.write(`${ESC}?1049h${ESC}?25l`);
        process.stdout.on('resize', draw);
        const restore = () => process.stdout.write(`${ESC}?25h${ESC}?1049l`);
        process.on('exit', restore);
      }
      process.on('SIGINT', () => process.exit(0));
      const tick = setInterval(scheduleDraw, 1000); // "last seen" ages
      tick.unref();

      let backoff = 250;
      for (;;) {
        const url = new URL('/v1/fleet/stream', api.url.replace(/^http/, 'ws'));
        if (view.lastSeq) url.searchParams.set('since', String(view.lastSeq));
        const closed = await new Promise<string>((resolve) => {
          const ws = new WebSocket(url, { headers: api.token ? { authorization: `Bearer ${api.token}` } : {}, ...api.tls });
          ws.on('open', () => {
            backoff = 250;
            status = `live from ${api.url}`;
            scheduleDraw();
          });
          ws.on('unexpected-response', (_req, res) => {
            if (res.statusCode === 401 || res.statusCode === 403) {
              // The relay's own reason (a revoked or expired token says so), else the general one.
              let body = '';
              res.setEncoding('utf8').on('data', (d: string) => (body += d.slice(0, 4096)));
              res.on('end', () => {
                let data: unknown;
                try {
                  data = JSON.parse(body);
                } catch {
                  data = undefined;
                }
                const reason = isErrorBody(data) ? `${data.error.code}: ${data.error.message}` : 'OUTPOST_ERR_UNAUTHORIZED: the relay refused the token: pass --token or set OUTPOST_TOKEN';
                process.stderr.write(`error: ${reason}\n`);
                process.exit(1);
              });
              return;
            }
            resolve(`HTTP ${res.statusCode}`);
          });
          ws.on('message', (data) => {
            const m = JSON.parse(data.toString()) as StreamMessage;
            view.apply(m);
            if (opts.json) process.stdout.write(`${data.toString()}\n`);
            else scheduleDraw();
          });
          ws.on('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message));
          ws.on('close', (code, reason) => {
            // Reconnecting cannot help: the token itself has ended.
            if (code === STREAM_CLOSE.TOKEN_ENDED) {
              process.stderr.write(`error: OUTPOST_ERR_UNAUTHORIZED: ${reason.toString() || 'the token ended'}: ask an admin for a new one (outpost-relay tokens create)\n`);
              process.exit(1);
            }
            resolve(`closed ${code}${reason.length ? ` ${reason.toString()}` : ''}`);
          });
        });
        status = `reconnecting (${closed})`;
        if (!tty) process.stderr.write(`stream ${closed}; reconnecting in ${backoff} ms\n`);
        scheduleDraw();
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    },
  );
}
