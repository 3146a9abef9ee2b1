// outpost-agent start: connect to the relay, serve models, report health (foreground).

import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import { collectDataset, durationOption, parseDurationOption, parsePort, parsePositiveInt, sizeOption, closeOnSignals, OutpostError, ACCELERATOR_PATTERN, MAX_ACCELERATORS } from '@outpost/shared';
import { defaultAgentDir } from '../device-file.js';

export function startCommand(program: Command): void {
  program
    .command('start')
    .description('run the agent: follow the relay\'s desired state and serve models over KServe v2 HTTP and gRPC')
    .option('--data-dir <dir>', 'where device.json and the model cache live (env OUTPOST_AGENT_DIR)', defaultAgentDir())
    .option('--host <host>', 'interface for the inference API', '0.0.0.0')
    .option('--port <port>', 'inference API port (0 picks a free one)', parsePort, 8000)
    .option('--grpc-port <port>', 'KServe v2 gRPC port, as Triton\'s (0 picks a free one; "off": none); same token, TLS and limits as --port', parseGrpcPort, 8001)
    .option('--token-file <file>', 'require the bearer token in this file on the inference API (or set env OUTPOST_AGENT_TOKEN)')
    .option('--https', "serve the inference API over HTTPS with this device's certificate (clients trust the relay's CA and check the name DEVICE_ID)")
    .option('--token <token>', 'deprecated: visible to every user in the process list; use --token-file or OUTPOST_AGENT_TOKEN')
    .addOption(sizeOption('--max-request-size <size>', "largest inference request body (a model's own signature may allow less)", 64 * 1024 * 1024))
    .addOption(sizeOption('--grpc-max-message-size <size>', "largest gRPC message (gRPC's default); each call in flight reserves this much of --max-body-memory", 4 * 1024 * 1024))
    .addOption(sizeOption('--max-body-memory <size>', 'memory all inference request bodies may hold at once; past it requests get 429', 128 * 1024 * 1024))
    .addOption(durationOption('--heartbeat <duration>', 'time between health reports (a bare number is seconds)', parseHeartbeat, 10_000))
    .option('--threads <n>', 'onnxruntime intra-op threads per model', parsePositiveInt, 1)
    .option('--accept-training', 'let the relay run training jobs on this device (code from the relay runs here)')
    .option('--dataset <name=path>', 'a local dataset jobs may ask for by name; it never leaves the device (repeat for several)', collectDataset)
    .option('--accelerator <name>', 'an accelerator this device has that detection misses (found: cuda, gpu, tegra); selectors accelerator=NAME and jobs submit --require NAME match it (repeat for several)', collectAccelerator)
    .option('--advertise-address <addr>', "where the other nodes of a multi-node job reach this device when it is rank 0 (MASTER_ADDR; default: this host's address toward the relay)", parseAdvertiseAddress)
    .addHelpText('after', `
Examples:
  outpost-agent start
  outpost-agent start --accept-training --dataset images=/data/images
  outpost-agent start --accept-training --accelerator cuda   # a GPU detection misses (e.g. in a container without /dev/nvidia*)
  outpost-agent start --accept-training --advertise-address 10.0.0.12   # rank 0 of multi-node jobs is reached here
  OUTPOST_AGENT_TOKEN=… outpost-agent start --port 8000        # or: --token-file /etc/outpost/inference.token
  outpost-agent start --grpc-port 9001      # KServe v2 gRPC (tritonclient.grpc) on 9001; --grpc-port off for none
  outpost-agent start --https --token-file /etc/outpost/inference.token
    # then: curl --cacert relay-ca.pem --connect-to DEVICE_ID:8000:HOST:8000 https://DEVICE_ID:8000/v2/health/ready
`)
    .action(async (opts: { dataDir: string; host: string; port: number; grpcPort: number | 'off'; https?: boolean; token?: string; tokenFile?: string; heartbeat: number; threads: number; acceptTraining?: boolean; dataset?: Record<string, string>; accelerator?: string[]; advertiseAddress?: string; maxRequestSize: number; grpcMaxMessageSize: number; maxBodyMemory: number }, command: Command) => {
      // Loaded here so the other commands start fast (no onnxruntime for `status`).
      const { createAgent } = await import('../agent.js');
      const agent = await createAgent({
        dataDir: opts.dataDir,
        host: opts.host,
        port: opts.port,
        grpcPort: opts.grpcPort === 'off' ? null : opts.grpcPort,
        // 8001 by default: taken by something else (a Triton beside it), the agent serves HTTP alone.
        grpcPortRequired: command.getOptionValueSource('grpcPort') !== 'default',
        heartbeatMs: opts.heartbeat,
        inferenceToken: inferenceToken(opts),
        inferenceTls: opts.https,
        maxRequestBytes: opts.maxRequestSize,
        maxBodyMemory: opts.maxBodyMemory,
        grpcMaxMessageBytes: opts.grpcMaxMessageSize,
        session: { intraOpThreads: opts.threads },
        acceptTraining: opts.acceptTraining,
        datasets: opts.dataset ?? {},
        ...(opts.accelerator ? { accelerators: opts.accelerator } : {}),
        ...(opts.advertiseAddress ? { advertiseAddress: opts.advertiseAddress } : {}),
      });
      closeOnSignals(agent);
    });
}

/** `--accelerator NAME`, repeatable: a name as the status message allows. */
export function collectAccelerator(value: string, previous: string[] = []): string[] {
  if (!new RegExp(ACCELERATOR_PATTERN).test(value)) throw new InvalidArgumentError("use lower-case letters, digits, '_' and '-', starting with a letter (at most 32), e.g. cuda.");
  if (!previous.includes(value) && previous.length >= MAX_ACCELERATORS) throw new InvalidArgumentError(`at most ${MAX_ACCELERATORS} accelerators.`);
  return previous.includes(value) ? previous : [...previous, value];
}

/** An IP address or host name, as the relay's rendezvous message allows. */
function parseAdvertiseAddress(value: string): string {
  if (!/^[A-Za-z0-9.:%_-]{1,253}$/.test(value)) throw new InvalidArgumentError('use an IP address or a host name (e.g. 10.0.0.12).');
  return value;
}

/** A port, or "off" (no gRPC port; commander turns a parser's null into ''). */
export function parseGrpcPort(value: string): number | 'off' {
  if (value === 'off') return 'off';
  return parsePort(value);
}

/** Health reports count against the device's MQTT rate quota: at most ten a second. */
function parseHeartbeat(value: string): number {
  const ms = parseDurationOption(value);
  if (ms < 100) throw new InvalidArgumentError('use at least 100ms.');
  return ms;
}

/** The inference token from a file, the environment, or (deprecated, it shows in `ps`) the command line. */
function inferenceToken(opts: { token?: string; tokenFile?: string }): string | undefined {
  if (opts.token) process.stderr.write('warning: --token is visible to every user of this machine in the process list; use --token-file FILE or OUTPOST_AGENT_TOKEN instead\n');
  if (opts.tokenFile) {
    let text: string;
    try {
      text = readFileSync(opts.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `cannot read --token-file ${opts.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!text) throw new OutpostError('OUTPOST_ERR_BAD_REQUEST', `--token-file ${opts.tokenFile} is empty`);
    return text;
  }
  return process.env.OUTPOST_AGENT_TOKEN || opts.token;
}
