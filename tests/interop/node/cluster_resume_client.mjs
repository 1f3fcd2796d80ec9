/*
 * Our JavaScript client (js/sio-stream.js) in Node as the client of one node of a cluster,
 * receiving a stream another node holds, through a link the Python test cuts
 * (tests/interop/test_cluster_resume_js.py).
 *
 *   node cluster_resume_client.mjs '<json config>'
 *
 * Config: {url}. Prints {"ready": true, "sid": ..., "features": [...]} once negotiated; answers
 * the event "digest" (stream) with the sha256 of what it read, and prints one line per such
 * stream: {received, sha256, errors, drops, statistics}. Exits once stdin closes.
 */
import { createHash } from 'node:crypto';
import { io } from 'socket.io-client';
import { StreamSocket } from '../../../js/sio-stream.js';

const config = JSON.parse(process.argv[2]);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const socket = io(config.url, {
  transports: ['websocket'],
  reconnectionDelay: 50,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
});
const streams = new StreamSocket(socket, { resumeTimeoutMs: 30_000 });
const drops = [];
socket.on('disconnect', (reason) => drops.push(reason));

streams.on('digest', async (stream) => {
  const hash = createHash('sha256');
  const errors = [];
  let received = 0;
  try {
    for await (const chunk of stream.readable) {
      hash.update(chunk);
      received += chunk.byteLength;
    }
  } catch (e) {
    errors.push({ name: e?.name ?? 'Error', message: e?.message ?? String(e) });
  }
  const sha256 = hash.digest('hex');
  print({ received, sha256, errors, drops, statistics: streams.statistics() });
  return sha256;
});

await new Promise((resolve) => socket.once('connect', resolve));
const features = [...(await streams.negotiated(10_000))];
print({ ready: true, sid: socket.id, features });
process.stdin.resume();
process.stdin.on('end', () => {
  socket.disconnect();
  process.exit(0);
});
