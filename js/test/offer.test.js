// Our reader's side of the negotiated `initial-credit`, against a fake socket.io-client socket:
// the hello offers credit, the first byte stream the server sends takes it (its placeholder says
// {credit: k}) and its chunks follow the event with no $stream-read; its end's final size is
// checked; a credit that was not offered fails that stream only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_INITIAL_CREDIT,
  DEFAULT_MAX_CHUNK,
  FEATURES,
  IntegrityError,
  StreamError,
  StreamSocket,
} from '../sio-stream.js';
import { fakeSocket } from './fake-socket.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));
const NO_RESUME = FEATURES.filter((f) => f !== 'resume');
const CHUNK = 1000;

/** A client whose hello the server answered with `features`; its offer is 4 credits of 1000 bytes. */
function connected(features = NO_RESUME, options = {}) {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { maxChunk: CHUNK, initialCredit: 4 * CHUNK, ...options });
  socket.serve('$stream-hello', { version: 1, features });
  const received = [];
  streams.on('get', (stream) => void received.push(stream));
  return { socket, streams, received };
}

/** The server sends stream `id` in a `get` event, with `credit` in its placeholder. */
function sent(env, id, credit, options) {
  const placeholder = { $stream: id, credit };
  if (options) placeholder.options = options;
  env.socket.serve('$stream', 'get', placeholder);
  return env.received.at(-1);
}

const write = (socket, id, n, fill = 1) => socket.serve('$stream-write', id, new Uint8Array(n).fill(fill), 'buffer');
const errors = (socket, id) => socket.of('$stream-error').filter(([, i]) => i === id);

async function readAll(stream) {
  const reader = stream.readable.getReader();
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return bytes;
    bytes += value.byteLength;
  }
}

test('the hello offers initialCredit in chunks of maxChunk, within the largest window; 0 offers none', () => {
  const plain = fakeSocket();
  new StreamSocket(plain, { initialCredit: DEFAULT_INITIAL_CREDIT });
  const credits = DEFAULT_INITIAL_CREDIT / DEFAULT_MAX_CHUNK;
  assert.deepEqual(plain.of('$stream-hello')[0][1].initial, { credits, size: DEFAULT_MAX_CHUNK });
  for (const options of [{}, { initialCredit: 0 }]) {
    const off = fakeSocket();
    new StreamSocket(off, options); // off by default, as on the Python side
    assert.equal(off.of('$stream-hello')[0][1].initial, undefined);
  }
  const small = fakeSocket();
  new StreamSocket(small, { maxChunk: 1000, window: 2, maxWindow: 5, initialCredit: 1 << 20 });
  assert.deepEqual(small.of('$stream-hello')[0][1].initial, { credits: 5, size: 1000 });
  for (const bad of [-1, 1.5, '16M', null]) {
    assert.throws(() => new StreamSocket(fakeSocket(), { initialCredit: bad }), RangeError, String(bad));
  }
});

test('the first byte stream takes the offer: its chunks are accepted before any read, and it reads on', async () => {
  const env = connected();
  const stream = sent(env, 's1', 4);
  assert.equal(stream.primed, 4);
  assert.equal(env.streams.statistics().offersTaken, 1);
  for (let i = 0; i < 4; i++) write(env.socket, 's1', CHUNK, i);
  assert.equal(stream.error, null);
  assert.equal(stream.inbox.length, 4, 'all four held for the application');
  assert.equal(env.socket.of('$stream-read').length, 0, 'no credit sent: the writer holds it');
  const reader = stream.readable.getReader();
  assert.equal((await reader.read()).value[0], 0);
  assert.equal((await reader.read()).value[0], 1);
  await tick();
  // Credit goes back in quarters of the window: the configured 8 chunks (above the 4 primed, as
  // the Python reader keeps the larger), so one read of 2 once 2 were consumed.
  const reads = env.socket.of('$stream-read');
  assert.ok(reads.length >= 1 && reads.every(([, id, size]) => id === 's1' && size === CHUNK), JSON.stringify(reads));
  assert.equal(reads.reduce((n, r) => n + r[3], 0), 2);
  write(env.socket, 's1', 500);
  const acks = [];
  env.socket.serve('$stream-end', 's1', { size: 4 * CHUNK + 500 }, (...a) => acks.push(a));
  let bytes = 2 * CHUNK;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
  }
  assert.equal(bytes, 4 * CHUNK + 500);
  assert.deepEqual(acks, [[]]);
});

test('a stream sent in an ack takes the offer as well', async () => {
  const env = connected();
  let down;
  env.streams.emit('download', (stream) => (down = stream));
  const [, , ack] = env.socket.of('$stream')[0];
  ack({ $stream: 'd1', credit: 2 });
  assert.equal(down.primed, 2);
  write(env.socket, 'd1', CHUNK);
  write(env.socket, 'd1', CHUNK);
  env.socket.serve('$stream-end', 'd1', { size: 2 * CHUNK }, () => {});
  assert.equal(await readAll(down), 2 * CHUNK);
});

test('a credit that was not offered fails that stream only, and leaves the offer', async () => {
  const env = connected();
  const bad = [
    ['b0', 0],
    ['b5', 5],
    ['bf', 1.5],
    ['bs', '3'],
    ['bo', 2, { objectMode: true }],
  ];
  for (const [id, credit, options] of bad) {
    const stream = sent(env, id, credit, options);
    assert.ok(stream.error instanceof StreamError, id);
    assert.match(stream.error.message, /initial credit/, id);
    assert.equal(errors(env.socket, id).length, 1, `${id}: the server is told`);
    assert.equal(env.streams.streamCount, 0);
  }
  // The connection goes on: the offer is still there for a good stream, once.
  const good = sent(env, 'g1', 3);
  assert.equal(good.error, null);
  assert.equal(good.primed, 3);
  const again = sent(env, 'g2', 1);
  assert.match(again.error.message, /initial credit that was not offered/);
  assert.equal(errors(env.socket, 'g2').length, 1);
  assert.equal(good.error, null);
  assert.equal(env.streams.streamCount, 1);
});

test('no offer toward a server without the features, and none with initialCredit 0', () => {
  for (const [features, options] of [
    [NO_RESUME.filter((f) => f !== 'read-size'), {}],
    [NO_RESUME.filter((f) => f !== 'initial-credit'), {}],
    [NO_RESUME, { initialCredit: 0 }],
  ]) {
    const env = connected(features, options);
    const stream = sent(env, 'x', 1);
    assert.match(stream.error.message, /initial credit that was not offered/, JSON.stringify(features));
    assert.equal(env.streams.statistics().offersTaken, 0);
  }
});

test("a final size other than what arrived fails the stream with IntegrityError and answers {integrity}", async () => {
  const env = connected();
  const stream = sent(env, 's1', 4);
  write(env.socket, 's1', CHUNK);
  const acks = [];
  env.socket.serve('$stream-end', 's1', { size: 2 * CHUNK }, (...a) => acks.push(a));
  assert.equal(acks.length, 1);
  assert.match(acks[0][0].integrity, /ended at 1000 bytes of its final size 2000/);
  // unacked-write: the writer learns it from the end's answer, not from a $stream-error.
  assert.equal(errors(env.socket, 's1').length, 0);
  await assert.rejects(readAll(stream), (e) => e instanceof IntegrityError && !e.remote);
  assert.equal(env.streams.streamCount, 0);
});

test('a final size that is not a byte count fails the stream as a protocol error', async () => {
  for (const size of [-1, 'x', 1.5, null]) {
    const env = connected();
    const stream = sent(env, 's1', 4);
    const acks = [];
    env.socket.serve('$stream-end', 's1', { size }, (...a) => acks.push(a));
    assert.match(String(acks[0][0]), /bad final size/, String(size));
    assert.equal(errors(env.socket, 's1').length, 1);
    assert.ok(stream.error && !(stream.error instanceof IntegrityError));
  }
});

test('writes that overtook their event are refused, and the final size fails the stream', async () => {
  // Nothing orders a writer's writes after its event but the transport, and one Socket.IO
  // connection delivers in order: a Python server sends a connection's events through one
  // ordered sender, cluster nodes forward a client's packets on one channel, and this client
  // decodes an event's streams before its handler runs. Were a write to come first anyway, it
  // is refused as for any unknown id, and the final size makes sure the stream fails instead of
  // ending clean and short.
  const env = connected();
  write(env.socket, 's1', CHUNK);
  const stream = sent(env, 's1', 4);
  write(env.socket, 's1', CHUNK);
  const acks = [];
  env.socket.serve('$stream-end', 's1', { size: 2 * CHUNK }, (...a) => acks.push(a));
  assert.ok(acks[0][0].integrity);
  await assert.rejects(readAll(stream), IntegrityError);
});

test('a plain end (no size) ends a primed stream as before; a JavaScript peer never sends one', async () => {
  const env = connected();
  const stream = sent(env, 's1', 4);
  write(env.socket, 's1', 10);
  const acks = [];
  env.socket.serve('$stream-end', 's1', (...a) => acks.push(a));
  assert.equal(await readAll(stream), 10);
  assert.deepEqual(acks, [[]]);
});

test('a resume keeps an offer not taken; its hello offers nothing; a refused one leaves no offer', async () => {
  const TOKEN = 'a'.repeat(43);
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { maxChunk: CHUNK, initialCredit: 4 * CHUNK });
  const received = [];
  streams.on('get', (s) => void received.push(s));
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: TOKEN } });
  socket.drop();
  socket.reconnect();
  assert.equal(socket.of('$stream-hello').at(-1)[1].initial, undefined);
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: 'b'.repeat(43), streams: {}, events: 0 } });
  await tick();
  socket.serve('$stream', 'get', { $stream: 'r1', credit: 4 });
  assert.equal(received.at(-1).primed, 4, 'the offer of the first hello, untaken, is taken now');
  // A refused resume starts a fresh session: nothing was offered on it.
  socket.drop();
  socket.reconnect();
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: 'c'.repeat(43), refused: 'unknown session' } });
  await tick();
  socket.serve('$stream', 'get', { $stream: 'r2', credit: 1 });
  assert.match(received.at(-1).error.message, /not offered/);
});

test('a primed window reports what was consumed every MiB, not every quarter window', async () => {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { initialCredit: 16 << 20 });
  const received = [];
  streams.on('get', (s) => void received.push(s));
  socket.serve('$stream-hello', { version: 1, features: NO_RESUME });
  socket.serve('$stream', 'get', { $stream: 'p1', credit: 64 });
  const stream = received[0];
  assert.equal(stream.readWindow, 64);
  for (let i = 0; i < 12; i++) write(socket, 'p1', DEFAULT_MAX_CHUNK);
  const reader = stream.readable.getReader();
  for (let i = 0; i < 12; i++) await reader.read();
  // 12 chunks of 256 KiB consumed: reads every 4 chunks (1 MiB), where a quarter window is 16.
  const reads = socket.of('$stream-read').map(([, , , count, report]) => [count, report.consumed]);
  assert.deepEqual(reads, [
    [4, 4],
    [4, 8],
    [4, 12],
  ]);
});
