// `pnpm run demo` must work from a fresh clone, also when port 8080 is taken: it prints a
// prediction, commands that work as printed, and `demo ready`; on Ctrl-C it stops, removes its
// folder and exits 0.

import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** Takes 127.0.0.1:8080 for the test, as another program would; undefined if it cannot. */
async function hold8080(): Promise<Server | undefined> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(undefined));
    server.listen(8080, '127.0.0.1', () => resolve(server));
  });
}

function sh(command: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
  });
}

t.test('pnpm run demo runs the demo in the shell\'s place, so Ctrl-C reaches only the demo', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  // Without `exec`, sh dies of the Ctrl-C while the demo still stops, and pnpm reports a failure;
  // tsx's own launcher would be a second process with a race in how it passes the signal on.
  t.equal(pkg.scripts.demo, 'pnpm run build && exec node --import tsx scripts/demo.ts');
});

t.test('the demo, with 8080 taken: trains, deploys, predicts, and stops on Ctrl-C leaving nothing', async (t) => {
  const busy = await hold8080();
  if (busy) t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())));
  else t.comment('port 8080 is not ours to take here; the demo runs on a free port instead');
  const env: Record<string, string | undefined> = { ...process.env, INIT_CWD: undefined };
  if (!busy) env.OUTPOST_DEMO_PORT = '0';
  // As `pnpm run demo` runs it (see the script above), from the repo root.
  const proc = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => proc.kill('SIGKILL'));
  let out = '';
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "demo ready" in 90 s; stdout: ${out}; stderr: ${err}`)), 90_000);
    proc.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('demo ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', () => reject(new Error(`the demo exited early; stdout: ${out}; stderr: ${err}`)));
  });
  const folder = /^files\s+(\S+) \(removed when the demo stops\)$/m.exec(out)?.[1];
  t.ok(folder && existsSync(folder), 'it announces the one folder it writes to');
  if (busy) t.match(out, /^port 8080 is busy; using a free one$/m);
  t.match(out, new RegExp(`relay\\s+http://127\\.0\\.0\\.1:\\d+ \\(data in ${folder}/relay; plain HTTP on 127\\.0\\.0\\.1 only: the demo runs --insecure, a real relay serves TLS\\)`));
  t.match(out, /training\s+job_[0-9a-f]+ on local/);
  t.match(out, /succeeded: loss 0\.\d+, accuracy 0\.\d+; registered classifier:1/);
  t.match(out, /deployment\s+dep_[0-9a-f]+ succeeded/);
  t.match(out, /→ 200 \{"model_name":"classifier","model_version":"1","outputs":\[.*\{"name":"label","datatype":"INT64","shape":\[2\],"data":\[0,2\]\}/);
  t.match(out, /demo ready: relay at http:\/\/127\.0\.0\.1:\d+/);
  t.equal(err, '', 'nothing on stderr');

  // The command it suggests works as printed, with this checkout's CLI (no registry).
  const tryLine = /^try:\s+(.+)$/m.exec(out)?.[1] ?? '';
  t.match(tryLine, /^OUTPOST_RELAY_DIR=\S+ \.\/node_modules\/\.bin\/outpost-relay jobs show job_[0-9a-f]+$/);
  const shown = await sh(tryLine);
  t.equal(shown.code, 0, 'the printed command works');
  t.match(shown.out, /succeeded/);
  // The agent is quiet in the demo's terminal, but its log lines are there for `devices logs`.
  const logs = await sh(tryLine.replace(/jobs show \S+$/, 'devices logs demo-device --lines 200'));
  t.equal(logs.code, 0, 'devices logs works on the demo device');
  t.match(logs.out, /model serving/, "the agent's info lines reach devices logs");

  // Ctrl-C under `pnpm run` reaches the demo twice: from the terminal and from pnpm.
  proc.kill('SIGINT');
  proc.kill('SIGINT');
  t.equal(await exited, 0, 'Ctrl-C stops it cleanly');
  t.notOk(existsSync(folder!), 'and its folder is gone');
  t.equal(err, '', 'without complaints on the way out');
});
