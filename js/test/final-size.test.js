// The negotiated `final-size` extension, against a fake socket.io-client socket: once a stream was
// ended, every write says the bytes left after it ({left: N}, a fourth argument), only toward a
// peer that announced the feature; as a reader, a fourth argument before the ack is ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamSocket, FEATURES, createStream } from '../sio-stream.js';
import { fakeSocket } from './fake-socket.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));
const NO_RESUME = FEATURES.filter((f) => f !== 'resume');

function connected(features) {
  const socket = fakeSocket();
  // Writes below maxChunk are taken at once (no backpressure): the end comes before the credit.
  const streams = new StreamSocket(socket, { maxChunk: 4000 });
  socket.serve('$stream-hello', { version: 1, features });
  return { socket, streams };
}

async function endedUpload(features) {
  const { socket, streams } = connected(features);
  const stream = createStream();
  streams.emit('put', stream);
  const writer = stream.writable.getWriter();
  const written = writer.write(new Uint8Array(2500));
  const closed = writer.close();
  await tick();
  socket.serve('$stream-read', stream.id, 1000, 8);
  await tick();
  await written;
  return { socket, stream, closed };
}

test('announces final-size', () => {
  assert.ok(FEATURES.includes('final-size'));
});

test('an ended stream says what is left after each write', async () => {
  const { socket, stream } = await endedUpload(NO_RESUME);
  const writes = socket.of('$stream-write').filter(([, id]) => id === stream.id);
  assert.deepEqual(writes.map((w) => w[2].byteLength), [1000, 1000, 500]);
  assert.deepEqual(writes.map((w) => w[4]), [{ left: 1500 }, { left: 500 }, { left: 0 }]);
});

test('no left toward a peer that did not announce final-size, nor before the end', async () => {
  const { socket, stream } = await endedUpload(NO_RESUME.filter((f) => f !== 'final-size'));
  for (const w of socket.of('$stream-write').filter(([, id]) => id === stream.id)) {
    assert.equal(w.length, 4, 'id, chunk and encoding only (unacked-write)');
  }
  const open = connected(NO_RESUME);
  const upload = createStream();
  open.streams.emit('put', upload);
  const written = upload.writable.getWriter().write(new Uint8Array(300));
  await tick();
  open.socket.serve('$stream-read', upload.id, 1000, 1);
  await tick();
  await written;
  const [write] = open.socket.of('$stream-write').filter(([, id]) => id === upload.id);
  assert.equal(write.length, 4);
});

test('a reader takes the ack after a fourth argument, and the data', async () => {
  const { socket, streams } = connected(NO_RESUME.filter((f) => f !== 'unacked-write'));
  const stream = streams._received('s1', {});
  const reader = stream.readable.getReader();
  const first = reader.read();
  await tick();
  const acks = [];
  socket.serve('$stream-write', 's1', new Uint8Array(10), 'buffer', { left: 0 }, (...args) => acks.push(args));
  const { value } = await first;
  assert.equal(value.byteLength, 10);
  assert.deepEqual(acks, [[]]);
  stream.destroy('done');
});
