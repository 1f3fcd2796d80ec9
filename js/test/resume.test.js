// Negotiated `resume` against a fake socket.io-client socket: what the client sends and keeps
// when the transport drops, what its resume hello says, how it replays what the server did not
// receive, and the cases that still fail the streams (a plain peer, a deliberate disconnect, a
// refusal, no reconnection in time). End to end through a cutting link: the Python tests
// (tests/interop/test_js_client_resume.py, tests/browser/test_page_resume.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamSocket, FEATURES, ResumeRefusedError, StreamError, createStream } from '../sio-stream.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));
const TOKEN = 'a'.repeat(43);

function fakeSocket() {
  const handlers = new Map();
  return {
    connected: true,
    active: true,
    io: {
      handlers: new Map(),
      reconnection: () => true,
      on(event, fn) {
        this.handlers.set(event, fn);
      },
    },
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
    drop(reason = 'transport close') {
      this.connected = false;
      if (reason === 'io client disconnect' || reason === 'io server disconnect') this.active = false;
      this.serve('disconnect', reason);
    },
    reconnect() {
      this.connected = true;
      this.serve('connect');
    },
  };
}

/** A socket whose server answered the hello (with a session token when it resumes). */
function connected(features = FEATURES, options = {}) {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { maxChunk: 1000, ...options });
  const resume = features.includes('resume') ? { token: TOKEN } : undefined;
  socket.serve('$stream-hello', { version: 1, features, ...(resume ? { resume } : {}) });
  return { socket, streams };
}

/** An upload of `chunks` chunks of 1000 bytes (byte i of chunk k is k), granted 4 credits. */
async function upload(socket, streams, chunks) {
  const stream = createStream();
  streams.emit('put', stream);
  const writer = stream.writable.getWriter();
  const written = (async () => {
    for (let k = 0; k < chunks; k++) await writer.write(new Uint8Array(1000).fill(k));
    await writer.close();
  })().then(() => null, (e) => e);
  socket.serve('$stream-read', stream.id, 1000, 4, { consumed: 0, received: 0 });
  await tick();
  return { stream, written };
}

const writesOf = (socket, id) => socket.of('$stream-write').filter(([, sid]) => sid === id).map(([, , chunk]) => chunk);

test('the hello announces resume, and the server token is kept; resumeTimeoutMs 0 announces nothing', () => {
  const socket = fakeSocket();
  new StreamSocket(socket);
  assert.ok(socket.of('$stream-hello')[0][1].features.includes('resume'));
  const off = fakeSocket();
  new StreamSocket(off, { resumeTimeoutMs: 0 });
  assert.ok(!off.of('$stream-hello')[0][1].features.includes('resume'));
  assert.throws(() => new StreamSocket(fakeSocket(), { resumeTimeoutMs: -1 }), TypeError);
  const { streams } = connected();
  assert.equal(streams._token, TOKEN);
  assert.ok(streams.resumable);
});

test('toward a plain peer (no hello, as npm socket.io-stream) a drop fails the streams at once', async () => {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket);
  const { stream, written } = await upload(socket, streams, 2);
  socket.drop();
  const error = await written;
  assert.ok(error instanceof StreamError);
  assert.equal(error.message, 'Connection aborted');
  assert.equal(streams.streamCount, 0);
  assert.equal(stream.error.message, 'Connection aborted');
});

test('a drop suspends; the resume hello reports what arrived; the writer replays what the server did not get', async () => {
  const { socket, streams } = connected();
  const { stream, written } = await upload(socket, streams, 8);
  assert.equal(writesOf(socket, stream.id).length, 4);
  // The server acknowledged two chunks (and granted two more) before the drop.
  socket.serve('$stream-read', stream.id, 1000, 2, { consumed: 2, received: 2000 });
  await tick();
  assert.equal(stream.retained, 4000, 'six chunks sent, two acknowledged');
  // A download the server writes to us, with 1500 bytes arrived.
  const down = streams._received('d1', {});
  const reader = down.readable.getReader();
  const first = reader.read();
  await tick();
  socket.serve('$stream-write', 'd1', new Uint8Array(1000), 'buffer');
  socket.serve('$stream-write', 'd1', new Uint8Array(500), 'buffer');
  await first;
  const sent = socket.sent.length;

  socket.drop();
  assert.ok(streams.suspended);
  assert.equal(stream.error, null);
  await reader.read(); // what arrived is still readable
  streams.emit('later', 1);
  await tick();
  assert.equal(socket.sent.length, sent, 'nothing is sent while suspended');

  socket.reconnect();
  const [, hello] = socket.sent[socket.sent.length - 1];
  assert.equal(hello.resume.token, TOKEN);
  assert.deepEqual(hello.resume.streams[stream.id], [0, 0, 0, 0]);
  const [received, outstanding, , ended] = hello.resume.streams.d1;
  assert.deepEqual([received, ended], [1500, 0]);
  assert.equal(outstanding, down.outstanding);

  // The server received 3 chunks of the upload and holds 5 credits.
  const before = writesOf(socket, stream.id).length;
  socket.serve('$stream-hello', {
    version: 1, features: FEATURES, resume: { token: 'b'.repeat(43), streams: { [stream.id]: [3000, 0, 0, 0], d1: [0, 0, 0, 0] } },
  });
  assert.equal(streams.suspended, false);
  assert.deepEqual(socket.sent.find(([name, info]) => name === '$stream-hello' && info.resume?.confirm), ['$stream-hello', { resume: { confirm: true } }]);
  assert.ok(socket.of('$stream').some(([, event]) => event === 'later'), 'events emitted meanwhile go after the resume');
  socket.serve('$stream-read', stream.id, 1000, 5, { consumed: 3, received: 3000 });
  await tick();
  const replayed = writesOf(socket, stream.id).slice(before);
  assert.deepEqual(replayed.map((c) => c[0]), [3, 4, 5, 6, 7], 'from the fourth chunk on, each once, in order');
  assert.equal(streams.statistics().resumes, 1);
  assert.equal(streams.statistics().resent, 3000);
  assert.equal(streams._token, 'b'.repeat(43));
  const [, end] = socket.of('$stream-end').find(([, id]) => id === stream.id);
  assert.equal(end, stream.id);
  socket.sent.filter(([name, id]) => name === '$stream-end' && id === stream.id).at(-1)[2]();
  socket.serve('$stream-end', stream.id);
  assert.equal(await written, null);
  down.destroy('done');
});

test('a read of 0 credits that says what the server received drops that much of the replay and grants nothing', async () => {
  // A sio_stream reader whose stream waits for its turn sends it (docs/protocol.md, resume).
  const { socket, streams } = connected();
  const { stream, written } = await upload(socket, streams, 8);
  assert.equal(writesOf(socket, stream.id).length, 4);
  assert.equal(stream.retained, 4000);
  socket.serve('$stream-read', stream.id, 1000, 0, { received: 4000 });
  await tick();
  assert.equal(stream.retained, 0, 'everything it received is forgotten');
  assert.equal(writesOf(socket, stream.id).length, 4, 'no credit came with it');
  assert.equal(stream.error, null);
  socket.serve('$stream-read', stream.id, 1000, 4, { consumed: 4, received: 4000 });
  await tick();
  assert.deepEqual(writesOf(socket, stream.id).map((c) => c[0]), [0, 1, 2, 3, 4, 5, 6, 7]);
  socket.sent.filter(([name, id]) => name === '$stream-end' && id === stream.id).at(-1)[2]();
  assert.equal(await written, null);
});

test('an end whose answer was lost is taken as answered when the server says it had it', async () => {
  const { socket, streams } = connected();
  const { stream, written } = await upload(socket, streams, 1);
  assert.equal(socket.of('$stream-end').length, 1);
  socket.drop();
  socket.reconnect();
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: TOKEN, streams: { [stream.id]: [1000, 3, 0, 1] } } });
  assert.equal(socket.of('$stream-end').length, 1, 'not sent again');
  socket.serve('$stream-end', stream.id);
  assert.equal(await written, null);
  assert.equal(streams.streamCount, 0);
});

test('a drop during the resume itself: the next connection asks again, with the same token', async () => {
  const { socket, streams } = connected();
  const { stream, written } = await upload(socket, streams, 6);
  socket.drop();
  socket.reconnect();
  const first = socket.of('$stream-hello').at(-1)[1];
  socket.drop(); // before the server's answer
  assert.ok(streams.suspended);
  socket.reconnect();
  const second = socket.of('$stream-hello').at(-1)[1];
  assert.equal(second.resume.token, TOKEN);
  assert.deepEqual(second.resume.streams, first.resume.streams);
  const before = writesOf(socket, stream.id).length;
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: 'd'.repeat(43), streams: { [stream.id]: [2000, 4, 1000, 0] } } });
  await tick();
  assert.deepEqual(writesOf(socket, stream.id).slice(before).map((c) => c[0]), [2, 3, 4, 5]);
  socket.sent.filter(([name, id]) => name === '$stream-end' && id === stream.id).at(-1)[2]();
  socket.serve('$stream-end', stream.id);
  assert.equal(await written, null);
  assert.equal(streams.statistics().resumes, 1);
});

test('a resume answer with offsets beyond what was sent, or a bad entry, fails that stream only', async () => {
  const { socket, streams } = connected();
  const a = await upload(socket, streams, 6);
  const b = await upload(socket, streams, 6);
  const c = await upload(socket, streams, 6);
  socket.drop();
  socket.reconnect();
  const entries = { [a.stream.id]: [999_999, 4, 1000, 0], [b.stream.id]: ['x', 0, 0, 0], [c.stream.id]: [1000, 4, 1000, 0] };
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: TOKEN, streams: entries } });
  const error = await a.written;
  assert.match(error.message, /cannot resume stream .*: the peer reports 999999 bytes received of 4000 sent/);
  assert.ok(socket.of('$stream-error').some(([, id]) => id === a.stream.id), 'the server is told');
  assert.equal((await b.written).message, 'Connection aborted');
  assert.equal(c.stream.error, null);
  c.stream.destroy('done');
});

test('a deliberate disconnect fails the streams at once', async () => {
  for (const reason of ['io client disconnect', 'io server disconnect']) {
    const { socket, streams } = connected();
    const { written } = await upload(socket, streams, 8);
    socket.drop(reason);
    assert.equal((await written).message, 'Connection aborted');
    assert.equal(streams.suspended, false);
  }
});

test('disconnect() while the transport is down (no disconnect event) fails the suspended streams at once', async () => {
  const { socket, streams } = connected();
  const { written } = await upload(socket, streams, 8);
  socket.drop();
  assert.ok(streams.suspended);
  // socket.io-client's disconnect() on a socket that is not connected: destroy(), then the manager closes.
  socket.active = false;
  socket.io.handlers.get('close')('forced close');
  assert.equal((await written).message, 'Connection aborted');
  assert.equal(streams.suspended, false);
});

test('a refused resume fails the old streams as a plain drop, and a fresh session carries on', async () => {
  const { socket, streams } = connected();
  const { written } = await upload(socket, streams, 8);
  socket.drop();
  const fresh = createStream();
  streams.emit('fresh', fresh);
  socket.reconnect();
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: 'c'.repeat(43), refused: 'unknown session' } });
  const error = await written;
  assert.ok(error instanceof ResumeRefusedError && error instanceof StreamError);
  assert.equal(error.message, 'Connection aborted');
  assert.equal(error.refused, 'unknown session');
  assert.equal(fresh.error, null, 'a stream emitted meanwhile goes on the fresh session');
  assert.ok(socket.of('$stream').some(([, event]) => event === 'fresh'));
  assert.equal(streams._token, 'c'.repeat(43));
  fresh.destroy('done');
});

test('no reconnection within resumeTimeoutMs fails the streams', async () => {
  const { socket, streams } = connected(FEATURES, { resumeTimeoutMs: 30 });
  const { stream, written } = await upload(socket, streams, 8);
  socket.drop();
  const alive = setTimeout(() => {}, 10_000); // the expiry timer is unref'd: keep the loop up meanwhile
  await stream.done; // the expiry timer settles it
  clearTimeout(alive);
  assert.equal((await written).message, 'Connection aborted');
  assert.equal(streams.suspended, false);
  socket.reconnect();
  assert.ok(!socket.of('$stream-hello').at(-1)[1].resume, 'a fresh hello, not a resume');
});
