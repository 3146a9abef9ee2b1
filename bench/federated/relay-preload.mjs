// Preloaded into the relay by bench/federated/run.ts (NODE_OPTIONS="--import this"), for two
// diagnostics that leave the relay's code untouched:
// - OUTPOST_BENCH_PROFILE_DIR: a V8 CPU profile of the whole process, written to
//   DIR/relay-PID.cpuprofile when it exits (the bench stops it with SIGTERM). Node refuses
//   --cpu-prof in NODE_OPTIONS, so it goes through node:inspector.
// - OUTPOST_BENCH_NODELAY=1: TCP_NODELAY on every socket the relay accepts (the embedded
//   MQTT broker's included), to measure what Nagle's algorithm costs its publishes.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

const dir = process.env.OUTPOST_BENCH_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  // A session on the same thread answers synchronously: this runs to its end inside 'exit'.
  process.once('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `relay-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}

if (process.env.OUTPOST_BENCH_NODELAY === '1') {
  const emit = net.Server.prototype.emit;
  net.Server.prototype.emit = function (event, socket, ...rest) {
    if (event === 'connection' && socket instanceof net.Socket) socket.setNoDelay(true);
    return emit.call(this, event, socket, ...rest);
  };
}
