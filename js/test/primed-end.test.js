// A stream that took a sio_stream server's initial credit says its final size in its $stream-end,
// so that a server whose first writes overtook the event (and lost them) fails the stream instead
// of ending it short; the server's {integrity} answer fails our stream with its message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamSocket, FEATURES, createStream } from '../sio-stream.js';
import { fakeSocket } from './fake-socket.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));
const NO_RESUME = FEATURES.filter((f) => f !== 'resume');
const OFFER = { credits: 3, size: 1000 };

async function ended(streams, bytes) {
  const stream = createStream();
  streams.emit('put', stream);
  const writer = stream.writable.getWriter();
  writer.write(new Uint8Array(bytes)).catch(() => {});
  const closed = writer.close();
  closed.catch(() => {});
  await tick();
  await tick();
  return { stream, closed };
}

test('a primed stream ends with its final size; a stream without credit ends as before', async () => {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { maxChunk: 4000 });
  socket.serve('$stream-hello', { version: 1, features: NO_RESUME, initial: OFFER });
  const primed = await ended(streams, 2500);
  const plain = await ended(streams, 0);
  const ends = socket.of('$stream-end');
  const mine = ends.find(([, id]) => id === primed.stream.id);
  assert.deepEqual(mine[2], { size: 2500 });
  assert.equal(typeof mine[3], 'function'); // unacked-write: the end asks for the answer
  const other = ends.find(([, id]) => id === plain.stream.id);
  assert.equal(typeof other[2], 'function'); // no size: it took no credit
});

test("the server's integrity answer fails the stream with its message", async () => {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { maxChunk: 4000 });
  socket.serve('$stream-hello', { version: 1, features: NO_RESUME, initial: OFFER });
  const { stream, closed } = await ended(streams, 2500);
  const [, , value, ack] = socket.of('$stream-end').find(([, id]) => id === stream.id);
  assert.deepEqual(value, { size: 2500 });
  const message = `stream ${stream.id} ended at 1000 bytes of its final size 2500`;
  ack({ integrity: message });
  await assert.rejects(closed, (error) => error.message === message);
});
