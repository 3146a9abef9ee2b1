// A job's outputs as a person fetches them: listed with their sizes and sha256, downloaded
// into a folder (0600, checked, never overwritten without --force), with paths written by the
// job treated as hostile: nothing lands outside the folder or through a symbolic link.

import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UnsafeOutputPath, downloadOutput, outputFile, printablePath } from '../packages/relay/dist/cli/job-outputs.js';
import { startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface Output {
  rank: number;
  path: string;
  sha256: string;
  size: number;
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

t.test('output paths from a job cannot leave the folder', async (t) => {
  const dir = tempDir(t, 'paths');
  t.equal(outputFile(dir, 'model.onnx'), join(dir, 'model.onnx'));
  t.equal(outputFile(dir, 'a/b/c.txt', 1), join(dir, 'rank-1', 'a', 'b', 'c.txt'));
  t.equal(outputFile(dir, '...'), join(dir, '...'), 'three dots is a name');
  for (const hostile of ['../x', 'a/../../x', '/etc/passwd', 'a//b', '.', './x', 'a/.', '..', '', 'a\\..\\x', 'a\nb', 'a\x1b[2Jb', 'nul\x00', 'x'.repeat(513)]) {
    t.throws(() => outputFile(dir, hostile), UnsafeOutputPath, `refused: ${JSON.stringify(hostile)}`);
  }
  t.equal(printablePath('a\nb\x1b[31m\\'), 'a\\x0ab\\x1b[31m\\\\', 'shown escaped, never obeyed by the terminal');
});

t.test('a download that does not match its sha256 gets no name', async (t) => {
  const dir = tempDir(t, 'verify');
  const good = Buffer.from('the real bytes');
  // A relay (or a proxy in front of it) that answers with other bytes than it listed.
  const relayThatLies = (body: string) => ({ url: 'http://relay', token: undefined, tls: {}, request: () => Promise.reject(new Error('unused')), download: async () => new Response(body) });
  const output = { rank: 0, path: 'out.bin', sha256: sha(good), size: good.length };
  await t.rejects(downloadOutput(relayThatLies('the fake bytes'), output, dir, join(dir, 'out.bin'), false), /does not match its sha256 \(14 bytes, sha256 [0-9a-f]{16}…\): the relay's copy may be corrupt/);
  await t.rejects(downloadOutput(relayThatLies('the real bytes and more'), output, dir, join(dir, 'out.bin'), false), /sent more than the 14 bytes of out\.bin/);
  t.same(readdirSync(dir), [], 'nothing left behind, not even the partial file');
  await downloadOutput(relayThatLies('the real bytes'), output, dir, join(dir, 'out.bin'), false);
  t.equal(readFileSync(join(dir, 'out.bin'), 'utf8'), 'the real bytes');
});

t.test('jobs outputs and jobs download', async (t) => {
  const relay = await startRelay(t);
  const bundle = tempDir(t, 'writer');
  // 3 MiB of one file, a nested one, and two whose names a terminal would obey.
  writeFileSync(
    join(bundle, 'write.sh'),
    [
      'cd "$OUTPOST_OUTPUT_DIR"',
      'head -c 3145728 /dev/zero | tr "\\0" "m" > model.onnx',
      'mkdir -p sub/dir && printf nested > sub/dir/file.txt',
      'printf evil > "$(printf \'bad\\nname\')"',
      'printf evil > "$(printf \'esc\\033[2J\')"',
    ].join('\n') + '\n',
  );
  const submitted = await relay.cli('jobs', 'submit', bundle, '--target', 'local', '--command', 'sh write.sh', '--json');
  t.equal(submitted.code, 0, submitted.stderr);
  const id = (JSON.parse(submitted.stdout) as { id: string }).id;
  await waitFor('the job to succeed', async () => ((await relay.api<{ state: string }>('GET', `/v1/jobs/${id}`)).body.state === 'succeeded' ? true : undefined));

  const json = JSON.parse((await relay.cli('jobs', 'outputs', id, '--json')).stdout) as Output[];
  t.same(json.map((o) => o.path).sort(), ['bad\nname', 'esc\x1b[2J', 'model.onnx', 'sub/dir/file.txt']);
  const model = json.find((o) => o.path === 'model.onnx')!;
  t.equal(model.size, 3 * 1024 * 1024);
  t.equal(model.sha256, sha(Buffer.alloc(3 * 1024 * 1024, 'm')));
  const listed = await relay.cli('jobs', 'outputs', id);
  t.match(listed.stdout, /^RANK\s+PATH\s+SIZE\s+SHA256$/m);
  t.match(listed.stdout, new RegExp(`^0\\s+model\\.onnx\\s+3\\.0 MiB\\s+${model.sha256}$`, 'm'));
  t.match(listed.stdout, /^0\s+bad\\x0aname\s/m, 'a newline in a name is shown, not printed');
  t.notMatch(listed.stdout, /\x1b/, 'no escape sequence reaches the terminal');

  const out = join(tempDir(t, 'download'), 'results');
  const all = await relay.cli('jobs', 'download', id, '-o', out);
  t.equal(all.code, 1, 'two outputs were refused');
  t.match(all.stderr, /^error: output "bad\\x0aname" is not downloaded: its path holds control characters/m);
  t.match(all.stderr, /^error: output "esc\\x1b\[2J" is not downloaded: .* \(2 refused in all\)$/m);
  t.match(all.stderr, /^2 files, 3\.0 MiB, sha256 checked$/m);
  t.same(all.stdout.trim().split('\n').sort(), [join(out, 'model.onnx'), join(out, 'sub/dir/file.txt')]);
  t.same(readdirSync(out).sort(), ['model.onnx', 'sub']);
  t.equal(statSync(join(out, 'model.onnx')).mode & 0o777, 0o600, 'written 0600');
  t.equal(statSync(join(out, 'sub/dir/file.txt')).mode & 0o777, 0o600);
  t.equal(sha(readFileSync(join(out, 'model.onnx'))), model.sha256);
  t.equal(readFileSync(join(out, 'sub/dir/file.txt'), 'utf8'), 'nested');

  // One file, into the current folder by default; nothing is overwritten without --force.
  const again = await relay.cli('jobs', 'download', id, 'sub/dir/file.txt', '-o', out);
  t.equal(again.code, 1);
  t.match(again.stderr, new RegExp(`^error: ${join(out, 'sub/dir/file.txt')} exists: pass --force to overwrite it`, 'm'));
  writeFileSync(join(out, 'sub/dir/file.txt'), 'changed');
  const forced = await relay.cli('jobs', 'download', id, 'sub/dir/file.txt', '-o', out, '--force', '--json');
  t.equal(forced.code, 0, forced.stderr);
  t.match(JSON.parse(forced.stdout), [{ rank: 0, path: 'sub/dir/file.txt', file: join(out, 'sub/dir/file.txt'), size: 6 }]);
  t.equal(readFileSync(join(out, 'sub/dir/file.txt'), 'utf8'), 'nested');
  const missing = await relay.cli('jobs', 'download', id, 'nope.txt', '-o', out);
  t.match(missing.stderr, new RegExp(`^error: ${id} has no output nope\\.txt: see what it has with outpost-relay jobs outputs ${id}$`, 'm'));
  t.match((await relay.cli('jobs', 'download', id, '--rank', '3', '-o', out)).stderr, /has no outputs of rank 3/);

  // A symbolic link in the folder is not written through.
  const linked = tempDir(t, 'linked');
  const elsewhere = tempDir(t, 'elsewhere');
  symlinkSync(elsewhere, join(linked, 'sub'));
  const through = await relay.cli('jobs', 'download', id, 'sub/dir/file.txt', '-o', linked);
  t.equal(through.code, 1);
  t.match(through.stderr, new RegExp(`^error: ${join(linked, 'sub')} is a symbolic link: not writing through it`, 'm'));
  t.same(readdirSync(elsewhere), [], 'nothing landed where the link points');
  // A link in place of the file itself is replaced with --force, never written through.
  const victim = join(elsewhere, 'victim');
  writeFileSync(victim, 'keep me');
  symlinkSync(victim, join(linked, 'model.onnx'));
  const overLink = await relay.cli('jobs', 'download', id, 'model.onnx', '-o', linked);
  t.match(overLink.stderr, /model\.onnx exists: pass --force/);
  t.equal((await relay.cli('jobs', 'download', id, 'model.onnx', '-o', linked, '--force')).code, 0);
  t.equal(readFileSync(victim, 'utf8'), 'keep me', 'the link target is untouched');
  t.notOk(lstatSync(join(linked, 'model.onnx')).isSymbolicLink(), 'the link was replaced by the file');
  t.ok(existsSync(join(linked, 'model.onnx')));

  // A file where a folder of the path should be, and a folder where the file should be.
  const clash = tempDir(t, 'clash');
  writeFileSync(join(clash, 'sub'), 'a file');
  t.match((await relay.cli('jobs', 'download', id, 'sub/dir/file.txt', '-o', clash)).stderr, /sub exists and is not a folder: remove it, or download to another folder/);
  mkdirSync(join(clash, 'model.onnx'));
  t.match((await relay.cli('jobs', 'download', id, 'model.onnx', '-o', clash, '--force')).stderr, /model\.onnx is a folder: remove it/);
  const quiet = await relay.cli('jobs', 'submit', bundle, '--target', 'local', '--command', 'true', '--json');
  const nothing = (JSON.parse(quiet.stdout) as { id: string }).id;
  await waitFor('the second job to succeed', async () => ((await relay.api<{ state: string }>('GET', `/v1/jobs/${nothing}`)).body.state === 'succeeded' ? true : undefined));
  t.match((await relay.cli('jobs', 'outputs', nothing)).stdout, new RegExp(`^${nothing} has no outputs: `, 'm'));

  const none = await relay.cli('jobs', 'outputs', 'job_000000000000');
  t.match(none.stderr, /OUTPOST_ERR_JOB_NOT_FOUND/);
});
