// The floor under the agent's HTTP path: a bare node:http server that reads each request body
// whole and answers with a fixed reply of the agent's size, running no model. bench/inference
// drives it with the same client and requests as the agent, so the difference between the two
// is what the agent itself adds. Prints its URL on stdout once listening.

import { createServer } from 'node:http';

const reply = Buffer.from(process.argv[2] ?? '{}');
const server = createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => res.end(reply));
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
