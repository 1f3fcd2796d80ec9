/*
 * Our JavaScript client (js/sio-stream.js) in Node: application events and call() answers
 * across cuts of the link (tests/interop/test_js_client_events.py).
 *
 *   node events_client.mjs '<json config>'
 *
 * Config: {url, slow: calls of 'slow' made at once (the server answers them once the test lets
 * it), puts: events 'put' each carrying a stream of putSize random bytes, call()ed `parallel` at
 * a time; burst: puts emitted at once first, then a line {"emitted": burst}; serve: the client
 * answers the server's 'double' calls, printing {"handling": x} and answering only once the
 * session resumed once, then emits 'ready'). Prints {"ready": true, "features": [...]} once negotiated, then one result line: the
 * answers of the slow calls, of every put ({n, size, sha256} and the sha256 sent), every error
 * that reached the application and the socket's statistics(). Exits once stdin closes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';
import { StreamSocket, createStream, sendBlob } from '../../../js/sio-stream.js';

const config = JSON.parse(process.argv[2]);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const errors = [];
const caught = (where) => (e) => {
  errors.push({ where, name: e?.name ?? 'Error', message: e?.message ?? String(e) });
  return null;
};

const socket = io(config.url, {
  transports: ['websocket'],
  reconnectionDelay: 50,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
});
const streams = new StreamSocket(socket);
const drops = [];
socket.on('disconnect', (reason) => drops.push(reason));
await new Promise((resolve) => socket.once('connect', resolve));
print({ ready: true, features: [...(await streams.negotiated(10_000))] });
let served;
const answered = new Promise((resolve) => (served = resolve));
if (config.serve) {
  streams.on('double', async (x) => {
    print({ handling: x });
    // The answer waits for the resume after the test's cut (a poll in the client, not a test sleep).
    while (streams.resumes < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    served();
    return x * 2;
  });
  streams.emit('ready');
}

const slow = Promise.all(Array.from({ length: config.slow ?? 0 }, (_, n) => streams.call('slow', n).catch(caught(`slow ${n}`))));

async function put(n) {
  const data = randomBytes(config.putSize);
  const stream = createStream();
  const answer = streams.call('put', stream, { n }).then((value) => ({ value }), (error) => ({ error }));
  await sendBlob(stream, new Blob([data]));
  const { value, error } = await answer;
  if (error) throw error;
  const [reply] = value;
  return { reply, sha256: createHash('sha256').update(data).digest('hex') };
}

const puts = [];
let next = config.burst ?? 0;
const burst = Array.from({ length: next }, (_, n) => put(n).catch(caught(`put ${n}`)));
if (burst.length) print({ emitted: burst.length });
puts.push(...(await Promise.all(burst)));
async function worker() {
  while (next < (config.burst ?? 0) + (config.puts ?? 0)) {
    const n = next++;
    puts.push(await put(n).catch(caught(`put ${n}`)));
  }
}
await Promise.all(Array.from({ length: config.parallel ?? 1 }, worker));
if (config.serve) await answered;
print({ slow: await slow, puts, errors, drops, statistics: streams.statistics(), streamCount: streams.streamCount });
process.stdin.resume();
process.stdin.on('end', () => {
  socket.disconnect();
  process.exit(0);
});
