// The negotiated `consumed` extension, against a fake socket.io-client socket: the reader tells
// the writer what its application consumed on every batched read, and the writer's progress
// (bytesAccepted) follows that, never the credit (a sio_stream reader grants one chunk, then a
// whole window, then grows it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamSocket, StreamError, FEATURES, createStream } from '../sio-stream.js';

const CHUNK = new Uint8Array(1000);
const tick = () => new Promise((resolve) => setImmediate(resolve));
// Resume adds a `received` count to every report (test/resume.test.js); these tests are about `consumed`.
const NO_RESUME = FEATURES.filter((f) => f !== 'resume');
const WITHOUT_CONSUMED = NO_RESUME.filter((f) => f !== 'consumed' && f !== 'window-growth');

function fakeSocket() {
  const handlers = new Map();
  return {
    connected: true,
    sent: [],
    on(event, fn) {
      handlers.set(event, fn);
      return this;
    },
    once() {},
    off() {},
    emit(...args) {
      this.sent.push(args);
    },
    serve(event, ...args) {
      handlers.get(event)(...args);
    },
    of(event) {
      return this.sent.filter(([name]) => name === event);
    },
  };
}

function connected(features) {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { maxChunk: CHUNK.byteLength });
  socket.serve('$stream-hello', { version: 1, features });
  return { socket, streams };
}

/** An upload announced to the peer, with `chunks` chunks queued in it. */
async function upload(features, chunks) {
  const { socket, streams } = connected(features);
  const stream = createStream();
  streams.emit('put', stream);
  const accepted = [];
  stream.onaccepted = (bytes) => accepted.push(bytes);
  const writer = stream.writable.getWriter();
  // Settles with the error the writes failed with (null once all were taken), never rejects.
  const written = (async () => {
    for (let i = 0; i < chunks; i++) await writer.write(CHUNK);
  })().then(() => null, (e) => e);
  await tick();
  return { socket, stream, accepted, written, writes: () => socket.of('$stream-write').length };
}

test('announces consumed and window-growth', () => {
  assert.ok(FEATURES.includes('consumed'));
  assert.ok(FEATURES.includes('window-growth'));
});

test('the reader reports the chunks its application consumed, on every batched read', async () => {
  const { socket, streams } = connected(NO_RESUME);
  const stream = streams._received('s1', {});
  const reader = stream.readable.getReader();
  const first = reader.read();
  await tick();
  for (let i = 0; i < 8; i++) socket.serve('$stream-write', 's1', CHUNK, 'buffer');
  await first;
  for (let i = 0; i < 7; i++) await reader.read();
  const reads = socket.of('$stream-read');
  assert.deepEqual(reads[0].slice(4), [{ consumed: 0 }]);
  const reports = reads.map((r) => r[4].consumed);
  assert.deepEqual(reports, [...reports].sort((a, b) => a - b), 'monotonic');
  assert.equal(reports[reports.length - 1], 8, 'the last batch (a quarter window) went back after 8 chunks');
  assert.equal(stream.consumedTotal, 8);
  stream.destroy('done');
});

test('no report toward a peer without consumed, nor toward a plain peer', async () => {
  for (const [features, length] of [[WITHOUT_CONSUMED, 4], [[], 3]]) {
    const { socket, streams } = connected(features);
    const stream = streams._received('s1', {});
    const reader = stream.readable.getReader();
    const first = reader.read();
    await tick();
    socket.serve('$stream-write', 's1', CHUNK, 'buffer');
    await first;
    for (const read of socket.of('$stream-read')) assert.equal(read.length, length, JSON.stringify(read));
    stream.destroy('done');
  }
});

test('progress follows the reports, not the credit', async () => {
  const { socket, stream, accepted, writes } = await upload(NO_RESUME, 12);
  socket.serve('$stream-read', stream.id, 1000, 1, { consumed: 0 }); // the reader's floor
  await tick();
  assert.equal(writes(), 1);
  // The reader consumed that one chunk and opens its whole window at once: 8 more credits.
  socket.serve('$stream-read', stream.id, 1000, 8, { consumed: 1 });
  await tick();
  assert.equal(writes(), 9);
  assert.equal(stream.bytesAccepted, 1000, 'one chunk consumed, whatever the credit');
  socket.serve('$stream-read', stream.id, 1000, 2, { consumed: 3 });
  await tick();
  assert.equal(stream.bytesAccepted, 3000);
  assert.deepEqual(accepted, [1000, 3000]);
  stream.destroy('done');
});

test('without consumed, progress keeps the old rule (credit beyond the first grant)', async () => {
  const { socket, stream } = await upload(WITHOUT_CONSUMED, 12);
  socket.serve('$stream-read', stream.id, 1000, 1);
  await tick();
  socket.serve('$stream-read', stream.id, 1000, 8);
  await tick();
  socket.serve('$stream-read', stream.id, 1000, 2);
  await tick();
  // The lie this extension removes: the reader consumed 3 chunks (1 + 2 given back), and the
  // credit of its window counts as 6 more.
  assert.equal(stream.bytesAccepted, 9000);
  stream.destroy('done');
});

const HOSTILE = [
  { consumed: '1' },
  { consumed: 1.5 },
  { consumed: -1 },
  { consumed: true },
  { consumed: null },
  { consumed: 3 }, // beyond the two chunks sent
  { consumed: 2 ** 60 },
  {},
  [1],
  '1',
  1,
];

for (const report of HOSTILE) {
  test(`a hostile report fails the stream with a StreamError: ${JSON.stringify(report)}`, async () => {
    const { socket, stream, written } = await upload(NO_RESUME, 5);
    socket.serve('$stream-read', stream.id, 1000, 2, { consumed: 0 });
    await tick();
    socket.serve('$stream-read', stream.id, 1000, 1, report);
    await tick();
    assert.ok(stream.error instanceof StreamError);
    assert.match(stream.error.message, /bad consumed report/);
    assert.deepEqual(socket.of('$stream-error').map(([, id]) => id), [stream.id]);
    assert.ok((await written) instanceof StreamError);
    assert.equal(stream.bytesAccepted, 0);
  });
}

test('a report that goes backwards fails the stream', async () => {
  const { socket, stream, written } = await upload(NO_RESUME, 5);
  socket.serve('$stream-read', stream.id, 1000, 3, { consumed: 0 });
  await tick();
  socket.serve('$stream-read', stream.id, 1000, 1, { consumed: 2 });
  socket.serve('$stream-read', stream.id, 1000, 1, { consumed: 2 }); // the same again is fine
  assert.equal(stream.error, null);
  assert.equal(stream.bytesAccepted, 2000);
  socket.serve('$stream-read', stream.id, 1000, 1, { consumed: 1 });
  assert.ok(stream.error instanceof StreamError);
  assert.ok((await written) instanceof StreamError);
});

test('toward a consumed peer a write ack is not progress', async () => {
  const features = NO_RESUME.filter((f) => f !== 'unacked-write');
  const { socket, stream } = await upload(features, 3);
  socket.serve('$stream-read', stream.id, 1000, 2, { consumed: 0 });
  await tick();
  const [, , , , ack] = socket.of('$stream-write')[0];
  ack();
  assert.equal(stream.bytesAccepted, 0);
  socket.serve('$stream-read', stream.id, 1000, 1, { consumed: 1 });
  assert.equal(stream.bytesAccepted, 1000);
  stream.destroy('done');
});
