// The reader's window growth, against a fake socket.io-client socket (no server, no timing): the
// test delivers $stream-write events itself and looks at the credit the reader sends back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamSocket, DEFAULT_WINDOW, DEFAULT_MAX_WINDOW, FEATURES, MAX_CREDIT } from '../sio-stream.js';

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

/** A StreamSocket whose peer announced `features` (and `hello`'s other keys), and a stream the peer sent it. */
function receivedStream(features, options, hello = {}) {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, options);
  socket.serve('$stream-hello', { version: 1, features, ...hello });
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

/**
 * A link played on a virtual clock (no timing): each credit granted comes back as a chunk
 * `delay` ms after its read, and chunks leave the writer no closer than `gap` ms apart (the
 * writer's, or the link's, pace). The reader reads every chunk as soon as it has one.
 */
function linkedStream({ delay, gap, late = 0, lateAt = 0, options = {}, hello = {} }) {
  let now = 0;
  let sent = 0; // chunks the writer has sent; chunk number `lateAt` leaves `late` ms later still
  const { socket, stream, reader } = receivedStream(FEATURES, { clock: () => now, ...options }, hello);
  const due = []; // arrival times of the chunks granted, in order
  let sendFree = 0; // when the writer may send its next chunk
  const emit = socket.emit.bind(socket);
  socket.emit = (...args) => {
    emit(...args);
    if (args[0] !== '$stream-read') return;
    for (let i = 0; i < (args[3] ?? 1); i++) {
      sent += 1;
      sendFree = Math.max(sendFree, now) + gap + (sent === lateAt ? late : 0);
      due.push(sendFree + delay);
    }
  };
  /** Read `count` chunks; whenever the reader waits, time jumps to the next arrival. */
  async function read(count) {
    const windows = [];
    for (let i = 0; i < count; i++) {
      let got = false;
      const pending = reader.read().then((r) => {
        got = true;
        return r;
      });
      await tick();
      if (!got) {
        assert.ok(due.length, 'the reader waits with no credit out');
        now = Math.max(now, due[0]);
        while (due.length && due[0] <= now) {
          due.shift();
          socket.serve('$stream-write', 's1', CHUNK, 'buffer');
        }
      }
      const { value } = await pending;
      assert.equal(value.byteLength, CHUNK.byteLength);
      if (windows[windows.length - 1] !== stream.readWindow) windows.push(stream.readWindow);
    }
    return windows;
  }
  return { socket, stream, read };
}

test('a reader on a long link grows its window to what the link carries, up to maxWindow', async () => {
  // 100 ms away, no bandwidth limit: a whole window comes back at once, in one round trip.
  const { socket, stream, read } = linkedStream({ delay: 100, gap: 0 });
  assert.deepEqual(await read(400), [8, 64]);
  assert.equal(DEFAULT_MAX_WINDOW, 64);
  // Never more credit out than the window: granted - arrived <= window.
  assert.ok(granted(socket) - 400 - stream.inbox.length <= stream.readWindow, `${granted(socket)} granted`);
  stream.destroy('done');
});

test('a window that drains in a fraction of a round trip grows to twice what the link carries', async () => {
  // 100 ms away, a chunk every 5 ms: about 20 chunks a round trip. The first window's 8 chunks
  // came in 35 ms, so it grows to about 40 at once, where doubling went 8 -> 16 -> 32.
  const { stream, read } = linkedStream({ delay: 100, gap: 5 });
  const windows = await read(200);
  assert.equal(windows[0], DEFAULT_WINDOW);
  assert.ok(windows[1] >= 40 && windows[1] <= DEFAULT_MAX_WINDOW, `windows ${windows}`);
  stream.destroy('done');
});

test('one late chunk does not hide the rate of the rest of the window', async () => {
  // As above, but the first window's last chunk leaves 50 ms late (a writer's pause): over the
  // whole window the rate said too little (8 -> 32 -> 64), over half of it or more about 40 at once.
  const { stream, read } = linkedStream({ delay: 100, gap: 5, late: 50, lateAt: DEFAULT_WINDOW });
  const windows = await read(100);
  assert.ok(windows[1] >= 40, `windows ${windows}`);
  stream.destroy('done');
});

test('a reader waiting for data that comes slower than the round trip does not grow to maxWindow', async () => {
  // One chunk every 10 ms, 1 ms away: the reader always waits with credit out (the old rule,
  // "waited for data after a whole window", doubled it to 64 chunks of credit), but a window
  // takes longer than two round trips to drain (a round trip's samples include the writer's
  // pace, so the first window may still grow once, to about twice itself).
  const { stream, read } = linkedStream({ delay: 1, gap: 10 });
  const windows = await read(400);
  assert.ok(windows.length <= 2 && Math.max(...windows) <= 3 * DEFAULT_WINDOW, `windows ${windows}`);
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

test('windows beyond what writers accept are refused at construction, with a RangeError', () => {
  for (const options of [{ window: 0 }, { maxWindow: 1025 }, { objectWindow: 2000 }, { window: 1.5 }]) {
    assert.throws(() => new StreamSocket(fakeSocket(), options), RangeError, JSON.stringify(options));
  }
  assert.equal(new StreamSocket(fakeSocket(), { maxWindow: null }).maxWindow, DEFAULT_MAX_WINDOW); // as if left out
  const largest = new StreamSocket(fakeSocket(), { window: MAX_CREDIT, maxWindow: MAX_CREDIT });
  assert.equal(largest.maxWindow, MAX_CREDIT);
});

test("windows stay within the peer writer's credit-limit (a Python writer fails a stream granted beyond it)", async () => {
  // The writer keeps 12 chunks of our read size (maxChunk 1 KiB): the window opens at 12, not
  // 16, and on a long link grows no further, whatever maxWindow says.
  const hello = { credit: { bytes: 12 * 1024, objects: 5 } };
  const { socket, stream, read } = linkedStream({
    delay: 100,
    gap: 0,
    options: { window: 16, maxWindow: MAX_CREDIT, maxChunk: 1024 },
    hello,
  });
  assert.deepEqual(await read(200), [12]);
  assert.ok(granted(socket) - 200 - stream.inbox.length <= 12, `${granted(socket)} granted`);
  stream.destroy('done');
  // Our hello says what our writer keeps; without credit-limit in the peer's hello its bound is not used.
  const plain = receivedStream(FEATURES.filter((f) => f !== 'credit-limit'), { window: 16, maxChunk: 1024 }, hello);
  assert.equal(plain.streams._creditCap(false), MAX_CREDIT);
  const sent = fakeSocket();
  const ours = new StreamSocket(sent, { maxChunk: 1024 });
  ours._sendHello();
  const ourHello = sent.sent.find((args) => args[0] === '$stream-hello')[1];
  assert.ok(ourHello.features.includes('credit-limit'));
  assert.deepEqual(ourHello.credit, { bytes: MAX_CREDIT * 1024, objects: MAX_CREDIT });
});

test("an object stream's window stays within the peer's objects bound; a malformed bound is ignored", async () => {
  const { streams } = receivedStream(FEATURES, { objectWindow: 128 }, { credit: { bytes: 1 << 20, objects: 5 } });
  const objects = streams._received('o1', { objectMode: true });
  const reader = objects.readable.getReader();
  const first = reader.read();
  await tick();
  assert.equal(objects.readWindow, 5);
  assert.equal(objects.outstanding, 5);
  objects.destroy('done');
  await first.catch(() => {});
  for (const credit of [{ bytes: 0, objects: 5 }, { bytes: 1.5, objects: 5 }, 'x', null]) {
    assert.equal(receivedStream(FEATURES, {}, { credit }).streams._creditCap(true), MAX_CREDIT);
  }
});
