// `pnpm run demo` must work from a fresh clone: it prints a prediction and `demo ready`, then
// stops cleanly on Ctrl-C.

import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

t.test('the demo trains, deploys, predicts, and stops on SIGINT', async (t) => {
  const proc = spawn(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'scripts/demo.ts')], {
    cwd: ROOT,
    env: { ...process.env, OUTPOST_DEMO_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => proc.kill('SIGKILL'));
  let out = '';
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "demo ready" in 60 s; stdout: ${out}; stderr: ${err}`)), 60_000);
    proc.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('demo ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', () => reject(new Error(`the demo exited early; stdout: ${out}; stderr: ${err}`)));
  });
  t.match(out, /training\s+job_[0-9a-f]+ on local/);
  t.match(out, /succeeded: loss 0\.\d+, accuracy 0\.\d+; registered classifier:1/);
  t.match(out, /deployment\s+dep_[0-9a-f]+ succeeded/);
  t.match(out, /→ 200 \{"model_name":"classifier","model_version":"1","outputs":\[.*\{"name":"label","datatype":"INT64","shape":\[2\],"data":\[0,2\]\}/);
  t.match(out, /demo ready: relay at http:\/\/127\.0\.0\.1:\d+/);
  proc.kill('SIGINT');
  t.equal(await exited, 0, 'Ctrl-C stops it cleanly');
});
