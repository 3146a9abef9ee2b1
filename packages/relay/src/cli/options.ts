// Options every client command takes.

import type { Command } from 'commander';

export function clientOptions(cmd: Command): Command {
  return cmd
    .option('--relay <url>', 'relay HTTP URL; host:port means http://host:port (env OUTPOST_RELAY_URL; default: the relay running on this host)')
    .option('--token <token>', 'API token (env OUTPOST_TOKEN; default: this host relay\'s admin token)')
    .option('--data-dir <dir>', 'relay data dir to find the local relay in (env OUTPOST_RELAY_DIR)')
    .option('--ca <file>', "the relay CA's certificate, to trust the relay with (env OUTPOST_CA_FILE; default: this host relay's; outpost-relay ca prints it)")
    .option('--json', 'print machine-readable JSON on stdout');
}
