/*
 * Our JavaScript client (js/sio-stream.js) in Node: a download whose carrying event is lost in a
 * drop, with the reads its reader sent behind it (tests/interop/test_js_client_rereads.py).
 *
 *   node rereads_client.mjs '<json config>'
 *
 * Config: {url}. Prints {"ready": true, "features": [...]} once negotiated; then emits 'fetch'
 * with a fresh stream it reads at once (its reader asks for credit behind the event) and prints
 * {"emitted": true, "reads": <$stream-read events sent for it>}; then reads the stream to its
 * end and prints {size, sha256, errors, statistics, streamCount}. Exits once stdin closes.
 */
import { createHash } from 'node:crypto';
import { io } from 'socket.io-client';
import { StreamSocket, createStream } from '../../../js/sio-stream.js';

const config = JSON.parse(process.argv[2]);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const errors = [];

const socket = io(config.url, {
  transports: ['websocket'],
  reconnectionDelay: 50,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
});
const streams = new StreamSocket(socket);
await new Promise((resolve) => socket.once('connect', resolve));
print({ ready: true, features: [...(await streams.negotiated(10_000))] });

// Count the reads that leave for the stream (socket.io-client's emit, as the client calls it).
const stream = createStream();
let reads = 0;
const emit = socket.emit.bind(socket);
socket.emit = (...args) => {
  if (args[0] === '$stream-read' && args[1] === stream.id) reads += 1;
  return emit(...args);
};
streams.emit('fetch', 'a', stream);
const reader = stream.readable.getReader();
const hash = createHash('sha256');
let size = 0;
const reading = (async () => {
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    hash.update(value);
    size += value.byteLength;
  }
})().catch((e) => errors.push({ name: e?.name ?? 'Error', message: e?.message ?? String(e) }));
await new Promise((resolve) => setImmediate(resolve));
print({ emitted: true, reads });
await reading;
// The stream leaves the registry once both of its sides are done (a poll, bounded: not a sleep).
for (let i = 0; i < 6000 && streams.streamCount; i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
print({ size, sha256: hash.digest('hex'), errors, statistics: streams.statistics(), streamCount: streams.streamCount });
process.stdin.resume();
process.stdin.on('end', () => {
  socket.disconnect();
  process.exit(0);
});
