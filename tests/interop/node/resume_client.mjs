/*
 * Our JavaScript client (js/sio-stream.js) in Node, uploading and downloading at once through a
 * link that the Python test cuts (tests/interop/test_js_client_resume.py).
 *
 *   node resume_client.mjs '<json config>'
 *
 * Config: {url, up: bytes, down: bytes, objects: count, parallel: streams each way (default 1;
 * results are then lists), resumeTimeoutMs, reconnectionDelay, disconnectAfter: bytes (the
 * client calls disconnect() itself once that much of its upload was accepted), disconnectWhileDown
 * (it calls disconnect() as soon as the transport drops)}. Prints one JSON line {"ready": true, "features": [...]} once negotiated, then one
 * result line: what arrived each way (size, sha256), every error that reached the application
 * ({where, name, message}), and the socket's statistics(). Exits once stdin closes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';
import { StreamSocket, createStream, sendBlob } from '../../../js/sio-stream.js';

const config = JSON.parse(process.argv[2]);
const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const errors = [];
const caught = (where) => (e) => {
  errors.push({ where: e?.where ?? where, name: e?.name ?? 'Error', message: e?.message ?? String(e) });
  return null;
};

const socket = io(config.url, {
  transports: ['websocket'],
  reconnectionDelay: config.reconnectionDelay ?? 50,
  reconnectionDelayMax: Math.max(200, config.reconnectionDelay ?? 0),
  randomizationFactor: 0,
});
const streams = new StreamSocket(socket, { resumeTimeoutMs: config.resumeTimeoutMs ?? 30_000 });
const drops = [];
socket.on('disconnect', (reason) => {
  drops.push(reason);
  // The application gives up while the transport is down (socket.io-client then emits nothing).
  if (config.disconnectWhileDown && reason !== 'io client disconnect') setImmediate(() => socket.disconnect());
});
await new Promise((resolve) => socket.once('connect', resolve));
const features = [...(await streams.negotiated(10_000))];
print({ ready: true, features });

// Uploads go with events that ask for no ack: a call()'s reply pending at a drop is lost with the
// old connection (as on the Python side), the stream itself is what survives. The server records
// what arrived.
async function upload(size) {
  const data = randomBytes(size);
  const stream = createStream();
  streams.emit('upload', stream);
  if (config.disconnectAfter) {
    stream.onaccepted = (bytes) => {
      if (bytes >= config.disconnectAfter && socket.connected) socket.disconnect();
    };
  }
  const sent = await sendBlob(stream, new Blob([data]));
  return { sent, sha256: sha256(data) };
}

async function download(size) {
  const [stream, digest] = await streams.call('download', size).catch((e) => {
    e.where = 'download call';
    throw e;
  });
  return async () => {
    const hash = createHash('sha256');
    let received = 0;
    for await (const chunk of stream.readable) {
      hash.update(chunk);
      received += chunk.byteLength;
    }
    return { received, sha256: hash.digest('hex'), expected: digest };
  };
}

async function objects(count) {
  const up = createStream({ objectMode: true });
  streams.emit('objects', up);
  const writer = up.writable.getWriter();
  for (let i = 0; i < count; i++) await writer.write({ n: i, pad: 'x'.repeat(i % 200) });
  await writer.close();
  return { sent: count };
}

const started = performance.now();
const times = (n, make) => (config.parallel ? Promise.all(Array.from({ length: n }, make)) : make());
const parallel = config.parallel ?? 1;
// Downloads are asked for first: with `announceStart`, a line {"started": true} says every
// download's call() was answered (a reply pending at a cut would be lost with the connection).
const reading = config.down ? await times(parallel, () => download(config.down).catch(caught('download'))) : null;
if (config.announceStart) print({ started: true });
const read = (next) => (next ? next().catch(caught('download')) : null);
const [up, down, objs] = await Promise.all([
  config.up ? times(parallel, () => upload(config.up).catch(caught('upload'))) : null,
  Array.isArray(reading) ? Promise.all(reading.map(read)) : read(reading),
  config.objects ? objects(config.objects).catch(caught('objects')) : null,
]);
const seconds = (performance.now() - started) / 1000;
const statistics = streams.statistics();
print({ seconds, up, down, objects: objs, errors, drops, statistics, streamCount: streams.streamCount });
process.stdin.resume();
process.stdin.on('end', () => {
  socket.disconnect();
  process.exit(0);
});
