// Shell completion for both CLIs, generated from their commander trees: the commands, the
// subcommands and the options each takes, so a new command or option completes with no
// script to keep in step. Option values and command arguments complete as file names.

import { Argument, type Command } from 'commander';
import { examples } from './cli-options.js';

interface CommandNode {
  /** Space-separated path below the program: "" for the program, "models push". */
  path: string;
  subcommands: string[];
  options: string[];
  /** Options that take a value: the next word is that value, not a command. */
  valueOptions: string[];
}

/** Flags and command names only ever hold these characters; anything else is left out of a script. */
const WORD = /^-{0,2}[A-Za-z0-9][A-Za-z0-9-]*$/;

function nodes(program: Command): CommandNode[] {
  const out: CommandNode[] = [];
  const visit = (cmd: Command, path: string) => {
    const options = cmd.options.filter((o) => !o.hidden);
    const flagsOf = (o: (typeof options)[number]) => [o.long, o.short].filter((f): f is string => typeof f === 'string' && WORD.test(f));
    const builtIn = ['--help', ...(cmd === program && program.version() ? ['--version'] : [])];
    out.push({
      path,
      subcommands: cmd.commands.map((c) => c.name()).filter((n) => WORD.test(n)),
      options: [...new Set([...options.flatMap(flagsOf), ...builtIn])],
      valueOptions: options.filter((o) => o.required || o.optional).flatMap(flagsOf),
    });
    for (const sub of cmd.commands) if (WORD.test(sub.name())) visit(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  visit(program, '');
  return out;
}

const fn = (program: Command) => `_${program.name().replace(/[^A-Za-z0-9]/g, '_')}`;

/** The shell functions both scripts share: command words and value options per command path. */
function lookups(program: Command, all: CommandNode[], assign: (words: string[]) => string): string {
  const name = fn(program);
  const cases = (pick: (n: CommandNode) => string[]) =>
    all
      .filter((n) => pick(n).length > 0)
      .map((n) => `    "${n.path}") ${assign(pick(n))} ;;`)
      .join('\n');
  const valuePairs = all.flatMap((n) => n.valueOptions.map((o) => `"${n.path ? `${n.path} ` : ''}${o}"`));
  return `${name}_commands() {
  case "$1" in
${cases((n) => n.subcommands)}
    *) ${assign([])} ;;
  esac
}

${name}_options() {
  case "$1" in
${cases((n) => n.options)}
    *) ${assign([])} ;;
  esac
}

# True when option $2 of command path $1 takes a value (the next word).
${name}_takes_value() {
  case "\${1:+$1 }$2" in
    ${valuePairs.length ? valuePairs.join('|') : '"-"'}) return 0 ;;
  esac
  return 1
}`;
}

function bash(program: Command, all: CommandNode[]): string {
  const name = fn(program);
  return `# bash completion for ${program.name()}: source <(${program.name()} completion bash)
${lookups(program, all, (w) => `echo "${w.join(' ')}"`)}

${name}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmdpath="" next w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ "$w" == -* ]]; then
      if ${name}_takes_value "$cmdpath" "$w"; then i=$((i + 1)); fi
      continue
    fi
    next="\${cmdpath:+$cmdpath }$w"
    if [[ -n "$(${name}_commands "$next")$(${name}_options "$next")" ]]; then cmdpath="$next"; fi
  done
  if ((COMP_CWORD > 1)) && ${name}_takes_value "$cmdpath" "\${COMP_WORDS[COMP_CWORD - 1]}"; then
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(${name}_options "$cmdpath")" -- "$cur"))
    return 0
  fi
  local commands
  commands="$(${name}_commands "$cmdpath")"
  if [[ -n "$commands" ]]; then
    COMPREPLY=($(compgen -W "$commands" -- "$cur"))
  else
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
  return 0
}

complete -F ${name} ${program.name()}
`;
}

function zsh(program: Command, all: CommandNode[]): string {
  const name = fn(program);
  // \`path\` is zsh's own array (tied to PATH): the command path is \`cmdpath\`.
  return `#compdef ${program.name()}
# zsh completion for ${program.name()}: ${program.name()} completion zsh > "\${fpath[1]}/_${program.name()}"
${lookups(program, all, (w) => `reply=(${w.join(' ')})`)}

${name}() {
  local cmdpath="" next w i
  local -a reply sub
  for ((i = 2; i < CURRENT; i++)); do
    w="\${words[i]}"
    if [[ "$w" == -* ]]; then
      if ${name}_takes_value "$cmdpath" "$w"; then i=$((i + 1)); fi
      continue
    fi
    next="\${cmdpath:+$cmdpath }$w"
    ${name}_commands "$next"; sub=($reply)
    ${name}_options "$next"
    if (( \${#sub} + \${#reply} )); then cmdpath="$next"; fi
  done
  if (( CURRENT > 2 )) && ${name}_takes_value "$cmdpath" "\${words[CURRENT-1]}"; then
    _files
    return
  fi
  if [[ "\${words[CURRENT]}" == -* ]]; then
    ${name}_options "$cmdpath"
    compadd -- $reply
    return
  fi
  ${name}_commands "$cmdpath"
  if (( \${#reply} )); then compadd -- $reply; else _files; fi
}

if [[ "\${funcstack[1]}" == "${name}" ]]; then
  ${name} "$@"
else
  compdef ${name} ${program.name()}
fi
`;
}

export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const all = nodes(program);
  return shell === 'bash' ? bash(program, all) : zsh(program, all);
}

/** `PROGRAM completion bash|zsh`: prints the script for the whole program, this command included. */
export function completionCommand(program: Command): void {
  const name = program.name();
  program
    .command('completion')
    .description('print a shell completion script (commands, subcommands and options)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .addHelpText(
      'after',
      examples(
        `source <(${name} completion bash)                                # this shell only`,
        `${name} completion bash > /etc/bash_completion.d/${name}       # every new shell`,
        `${name} completion zsh > "\${fpath[1]}/_${name}"                 # zsh, then: compinit`,
      ),
    )
    .action((shell: 'bash' | 'zsh') => {
      process.stdout.write(completionScript(program, shell));
    });
}
