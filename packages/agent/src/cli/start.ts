// outpost-agent start: connect to the relay, serve models, report health (foreground).

import type { Command } from 'commander';
import { collectDataset, parsePort, parsePositiveInt, closeOnSignals } from '@outpost/shared';
import { defaultAgentDir } from '../device-file.js';

export function startCommand(program: Command): void {
  program
    .command('start')
    .description('run the agent: follow the relay\'s desired state and serve models over KServe v2 HTTP')
    .option('--data-dir <dir>', 'where device.json and the model cache live (env OUTPOST_AGENT_DIR)', defaultAgentDir())
    .option('--host <host>', 'interface for the inference API', '0.0.0.0')
    .option('--port <port>', 'inference API port (0 picks a free one)', parsePort, 8000)
    .option('--token <token>', 'require this bearer token on the inference API (env OUTPOST_AGENT_TOKEN)')
    .option('--heartbeat <seconds>', 'seconds between health reports', parsePositiveInt, 10)
    .option('--threads <n>', 'onnxruntime intra-op threads per model', parsePositiveInt, 1)
    .option('--accept-training', 'let the relay run training jobs on this device (code from the relay runs here)')
    .option('--dataset <name=path>', 'a local dataset jobs may ask for by name; it never leaves the device (repeat for several)', collectDataset, {})
    .action(async (opts: { dataDir: string; host: string; port: number; token?: string; heartbeat: number; threads: number; acceptTraining?: boolean; dataset: Record<string, string> }) => {
      // Loaded here so the other commands start fast (no onnxruntime for `status`).
      const { createAgent } = await import('../agent.js');
      const agent = await createAgent({
        dataDir: opts.dataDir,
        host: opts.host,
        port: opts.port,
        heartbeatMs: opts.heartbeat * 1000,
        inferenceToken: opts.token ?? process.env.OUTPOST_AGENT_TOKEN,
        session: { intraOpThreads: opts.threads },
        acceptTraining: opts.acceptTraining,
        datasets: opts.dataset,
      });
      closeOnSignals(agent);
    });
}
