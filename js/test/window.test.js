// The reader's window growth, against a fake socket.io-client socket (no server, no timing): the
// test delivers $stream-write events itself and looks at the credit the reader sends back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamSocket, DEFAULT_WINDOW, DEFAULT_MAX_WINDOW, FEATURES } from '../sio-stream.js';

const CHUNK = new Uint8Array(1024);
/** Let the stream machinery run (a ReadableStream pulls in a later microtask). */
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A socket that records what is emitted and lets the test play the server's events. */
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
  };
}

/** A StreamSocket whose peer announced `features`, and a stream the peer sent it. */
function receivedStream(features, options) {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, options);
  socket.serve('$stream-hello', { version: 1, features });
  const stream = streams._received('s1', {});
  return { socket, streams, stream, reader: stream.readable.getReader() };
}

/** Chunks of credit granted so far ($stream-read counts; one each without batch-read). */
function granted(socket) {
  return socket.sent.filter(([event]) => event === '$stream-read').reduce((n, [, , , count]) => n + (count ?? 1), 0);
}

/** The application asks for data and waits; then the peer's next chunk arrives. */
async function deliverAndRead(socket, reader) {
  const read = reader.read();
  await tick();
  socket.serve('$stream-write', 's1', CHUNK, 'buffer');
  const { value } = await read;
  assert.equal(value.byteLength, CHUNK.byteLength);
}

test('a reader that waits for data doubles its window, up to maxWindow', async () => {
  const { socket, stream, reader } = receivedStream(FEATURES);
  const first = reader.read(); // waits: the window opens, nothing arrived yet
  await tick();
  assert.equal(granted(socket), DEFAULT_WINDOW);
  socket.serve('$stream-write', 's1', CHUNK, 'buffer');
  await first;
  const windows = [stream.readWindow];
  // Each chunk is read as soon as it arrives and the reader then waits again: the link is the limit.
  for (let i = 0; i < 400; i++) {
    await deliverAndRead(socket, reader);
    if (stream.readWindow !== windows[windows.length - 1]) windows.push(stream.readWindow);
  }
  assert.deepEqual(windows, [8, 16, 32, 64]);
  assert.equal(DEFAULT_MAX_WINDOW, 64);
  // Never more credit out than the window: granted - arrived <= window.
  assert.ok(granted(socket) - 401 <= stream.readWindow, `${granted(socket)} granted`);
  stream.destroy('done');
});

test('a reader that keeps data waiting never grows', async () => {
  const { socket, stream, reader } = receivedStream(FEATURES);
  // The peer fills all the credit that is out; the application reads while data is waiting.
  const fill = () => {
    for (let room = stream.outstanding; room > 0; room--) socket.serve('$stream-write', 's1', CHUNK, 'buffer');
  };
  const first = reader.read();
  await tick();
  fill();
  await first;
  for (let round = 0; round < 100; round++) {
    while (stream.inbox.length > 1) await reader.read();
    fill();
  }
  assert.equal(stream.readWindow, DEFAULT_WINDOW);
  assert.ok(stream.inbox.length <= DEFAULT_WINDOW);
  stream.destroy('done');
});

test('no growth toward a peer without batch-read, nor with maxWindow equal to window', async () => {
  for (const [features, options] of [[[], {}], [FEATURES, { maxWindow: DEFAULT_WINDOW }]]) {
    const { socket, stream, reader } = receivedStream(features, options);
    const first = reader.read();
    await tick();
    socket.serve('$stream-write', 's1', CHUNK, 'buffer');
    await first;
    for (let i = 0; i < 100; i++) await deliverAndRead(socket, reader);
    assert.equal(stream.readWindow, DEFAULT_WINDOW);
    stream.destroy('done');
  }
});
