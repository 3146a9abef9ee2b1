// Both CLIs' help and shell completion, from their real command trees: every command has
// examples, durations and sizes read as a person writes them, and the completion scripts
// parse and complete the real commands.

import t from 'tap';
import { needPackage } from './helpers/system-package.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDuration, formatSize, parseDuration, parseSize } from '@outpost/shared';
import { relayProgram } from '../packages/relay/dist/cli/program.js';
import { agentProgram } from '../packages/agent/dist/cli/program.js';
import { AGENT_BIN, RELAY_BIN, runCli, tempDir } from './helpers/programs.js';

type Command = ReturnType<typeof relayProgram>;
type Option = Command['options'][number];

function walk(cmd: Command, path: string[] = [cmd.name()]): Array<{ cmd: Command; path: string[] }> {
  return [{ cmd, path }, ...cmd.commands.flatMap((c) => walk(c, [...path, c.name()]))];
}

/** The whole --help of one command, the text added after it included. */
function helpOf(cmd: Command): string {
  let out = '';
  cmd.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  cmd.outputHelp();
  return out;
}

const hasValue = (o: Option) => o.required || o.optional;

t.test('durations and sizes are written as people write them', async (t) => {
  t.equal(formatDuration(600_000), '10m');
  t.equal(formatDuration(30_000), '30s');
  t.equal(formatDuration(6 * 3600_000), '6h');
  t.equal(formatDuration(2 * 86_400_000), '2d');
  t.equal(formatDuration(90_000), '90s');
  t.equal(formatDuration(1500), '1500ms');
  t.equal(formatSize(2 * 1024 ** 3), '2 GiB');
  t.equal(formatSize(64 * 1024 ** 2), '64 MiB');
  t.equal(formatSize(128 * 1024), '128 KiB');
  t.equal(formatSize(1000), '1000 B');
  t.equal(formatSize(3 * 1024 ** 4), '3 TiB');
  for (const ms of [500, 10_000, 600_000, 21_600_000, 90_000]) t.equal(parseDuration(formatDuration(ms)), ms, `${formatDuration(ms)} reads back`);
  for (const b of [1000, 131_072, 2 * 1024 ** 3]) t.equal(parseSize(formatSize(b)), b, `${formatSize(b)} reads back`);
});

for (const [name, program, bin] of [
  ['outpost-relay', relayProgram(), RELAY_BIN],
  ['outpost-agent', agentProgram(), AGENT_BIN],
] as const) {
  t.test(`${name}: every command's --help has examples and readable defaults`, async (t) => {
    const all = walk(program);
    t.ok(all.length > 5, `${all.length} commands`);
    for (const { cmd, path } of all) {
      const help = helpOf(cmd);
      t.match(help, new RegExp(`\\nExamples:\\n  (\\S+=\\S+ )?(source <\\()?${name}\\b`), `${path.join(' ')} has examples`);
      t.notMatch(help, /\(default: \d{5,}\)/, `${path.join(' ')} shows no raw milliseconds or bytes`);
      for (const o of cmd.options.filter(hasValue)) {
        if (o.defaultValue === undefined || !/<(duration|size)>/.test(o.flags)) continue;
        const shown = o.defaultValueDescription;
        t.ok(shown && !/^\d+$/.test(shown), `${path.join(' ')} ${o.long}: default shown as ${shown}`);
        t.equal(/<duration>/.test(o.flags) ? parseDuration(shown!) : parseSize(shown!), o.defaultValue, `${path.join(' ')} ${o.long}: ${shown} is the default`);
      }
    }
    // What a person sees, from the real program.
    const leaf = all.find((c) => c.cmd.commands.length === 0 && c.path.length > 1)!;
    const res = await runCli(bin, [...leaf.path.slice(1), '--help']);
    t.equal(res.code, 0);
    t.match(res.stdout, /Examples:/);
  });

  t.test(`${name} completion bash: a script bash accepts, completing the real commands`, async (t) => {
    const res = await runCli(bin, ['completion', 'bash']);
    t.equal(res.code, 0, res.stderr);
    const script = join(tempDir(t, 'completion'), `${name}.bash`);
    writeFileSync(script, res.stdout);
    t.equal(spawnSync('bash', ['-n', script]).status, 0, 'bash -n accepts it');
    const fn = `_${name.replace(/-/g, '_')}`;
    // COMP_WORDS as bash fills them: each case is the words typed so far, the last one being completed.
    const complete = (...words: string[]) =>
      execFileSync('bash', ['-c', `source "$0"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`, script], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean);
    const top = complete(name, '');
    for (const c of program.commands) t.ok(top.includes(c.name()), `${c.name()} completes at the top`);
    t.ok(top.includes('completion'));
    // A group's subcommands (the agent has no groups), then a command's options.
    const group = program.commands.find((c) => c.commands.length > 0);
    if (group) t.same(complete(name, group.name(), '').sort(), group.commands.map((c) => c.name()).sort(), `the subcommands of ${group.name()}`);
    const leafPath = group ? [group.name(), group.commands.find((c) => c.options.some(hasValue))!.name()] : [program.commands.find((c) => c.options.some(hasValue))!.name()];
    const leaf = walk(program).find((c) => c.path.slice(1).join(' ') === leafPath.join(' '))!.cmd;
    const options = complete(name, ...leafPath, '--');
    for (const o of leaf.options) t.ok(options.includes(o.long!), `${leafPath.join(' ')} completes ${o.long}`);
    t.ok(options.includes('--help'));
    const valued = leaf.options.find(hasValue)!;
    const dir = tempDir(t, 'files');
    writeFileSync(join(dir, 'model.onnx'), '');
    t.same(complete(name, ...leafPath, valued.long!, join(dir, 'mo')), [join(dir, 'model.onnx')], `the value of ${valued.long} completes as a file name`);
    t.same(complete(name, ...leafPath, valued.long!, 'x', '--'), options, 'an option value is skipped, not taken for a command');
  });

  t.test(`${name} completion zsh`, async (t) => {
    const res = await runCli(bin, ['completion', 'zsh']);
    t.equal(res.code, 0, res.stderr);
    t.match(res.stdout, new RegExp(`^#compdef ${name}\\n`));
    for (const c of program.commands) t.match(res.stdout, new RegExp(`\\b${c.name()}\\b`), `it names ${c.name()}`);
    t.notMatch(res.stdout, /local path\b/, 'zsh\'s own $path (PATH) is left alone');
    const missing = needPackage('zsh', 'zsh');
    if (missing) {
      t.comment(`zsh -n skipped: ${missing}`);
      return;
    }
    const script = join(tempDir(t, 'completion'), `_${name}`);
    writeFileSync(script, res.stdout);
    t.equal(spawnSync('zsh', ['-n', script]).status, 0, 'zsh -n accepts it');
    // words and CURRENT as zsh fills them, compadd and _files printing what they are given.
    const fn = `_${name.replace(/-/g, '_')}`;
    const complete = (...words: string[]) =>
      execFileSync('zsh', ['-c', `autoload -U compinit; compinit -u; source "$0"; compadd() { shift; print -l -- "$@" }; _files() { print FILES }; words=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}; ${fn}`, script], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean);
    t.same(complete(name, '').sort(), program.commands.map((c) => c.name()).sort(), 'the commands');
    const leaf = program.commands.find((c) => c.commands.length === 0 && c.options.some(hasValue))!;
    const valued = leaf.options.find(hasValue)!;
    t.same(complete(name, leaf.name(), valued.long!, ''), ['FILES'], `the value of ${leaf.name()} ${valued.long} completes as a file name`);
    t.ok(complete(name, leaf.name(), valued.long!, 'x', '--').includes('--help'), 'options after an option value');
  });

  t.test(`${name} completion rejects another shell`, async (t) => {
    const res = await runCli(bin, ['completion', 'fish']);
    t.equal(res.code, 1);
    t.match(res.stderr, /Allowed choices are bash, zsh/);
  });
}
