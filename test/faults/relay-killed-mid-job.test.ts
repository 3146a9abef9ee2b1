// kill -9 of the relay while a job runs on `local`: its processes (one that left its process
// group with setsid among them) would live on beside the next job. On start the relay ends
// what its previous life left running, removes the run's folder, and says so in one line.

import t from 'tap';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRelay, tempDir } from '../helpers/programs.js';
import { waitFor } from '../helpers/wait.js';
import { alive } from '../helpers/processes.js';


t.test('a relay killed mid-job ends the job\'s processes when it starts again', async (t) => {
  const first = await startRelay(t);
  const dir = tempDir(t, 'job');
  const pids = join(tempDir(t, 'pids'), 'pids');
  writeFileSync(join(dir, 'run.sh'), 'setsid sleep 1003 & echo $! >> "$PIDS"\necho $$ >> "$PIDS"\nsleep 1004\n');
  const job = JSON.parse((await first.cli('jobs', 'submit', dir, '--target', 'local', '--command', 'sh run.sh', '--env', `PIDS=${pids}`, '--json')).stdout) as { id: string };
  const started = await waitFor('both pids written', () => {
    const list = existsSync(pids) ? readFileSync(pids, 'utf8').trim().split('\n').map(Number) : [];
    return list.length >= 2 ? list : undefined;
  });
  t.ok(started.every(alive), 'the run and its detached child run');
  await first.kill();
  t.ok(started.every(alive), 'kill -9 of the relay leaves them running');

  const relay = await startRelay(t, { dataDir: first.dataDir });
  t.ok(started.every((pid) => !alive(pid)), 'the restarted relay ended them before it was ready');
  t.ok(relay.logs.some((l) => l.msg === 'ended 1 local job run(s) a previous relay left running, and removed their folders'), 'and said so');
  t.same(readdirSync(join(relay.dataDir, 'jobs')), [], 'their folders are gone');
  const j = (await relay.api<{ state: string; runs: Array<{ error: string }> }>('GET', `/v1/jobs/${job.id}`)).body;
  t.equal(j.state, 'failed');
  t.match(j.runs[0]!.error, /the relay restarted while this run was going/);
});
