// The negotiated `initial-credit` extension, against a fake socket.io-client socket: a sio_stream
// server's hello may offer credit for the first byte stream we send; that stream's placeholder
// says how many credits it took and its chunks follow the event with no $stream-read yet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamSocket, FEATURES, createStream } from '../sio-stream.js';
import { fakeSocket } from './fake-socket.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));
const NO_RESUME = FEATURES.filter((f) => f !== 'resume');
const OFFER = { credits: 3, size: 1000 };

function connected(features, initial = OFFER) {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { maxChunk: 4000 });
  socket.serve('$stream-hello', { version: 1, features, initial });
  return { socket, streams };
}

async function upload(streams, bytes) {
  const stream = createStream();
  streams.emit('put', stream);
  const writer = stream.writable.getWriter();
  writer.write(new Uint8Array(bytes));
  await tick();
  await tick();
  return stream;
}

test('announces initial-credit', () => {
  assert.ok(FEATURES.includes('initial-credit'));
});

test("the first byte stream takes the server's offer and sends it before any read; the next does not", async () => {
  const { socket, streams } = connected(NO_RESUME);
  const first = await upload(streams, 5000);
  const [event] = socket.of('$stream');
  assert.equal(event[2].credit, OFFER.credits);
  assert.equal(socket.of('$stream-read').length, 0);
  const writes = socket.of('$stream-write').filter(([, id]) => id === first.id);
  // One chunk per credit, each within the offer's size (read-size), with no read served.
  assert.deepEqual(writes.map((w) => w[2].byteLength), [1000, 1000, 1000]);
  const second = await upload(streams, 500);
  const events = socket.of('$stream');
  assert.equal(events.length, 2);
  assert.equal(events[1][2].credit, undefined);
  assert.equal(socket.of('$stream-write').filter(([, id]) => id === second.id).length, 0);
});

test('no credit taken without the feature, from a malformed offer, or by an object stream', async () => {
  for (const [features, initial] of [
    [NO_RESUME.filter((f) => f !== 'initial-credit'), OFFER],
    [NO_RESUME.filter((f) => f !== 'read-size'), OFFER],
    [NO_RESUME, { credits: 0, size: 1000 }],
    [NO_RESUME, { credits: 3 }],
    [NO_RESUME, 'x'],
  ]) {
    const { socket, streams } = connected(features, initial);
    const stream = await upload(streams, 2000);
    assert.equal(socket.of('$stream')[0][2].credit, undefined, JSON.stringify({ features, initial }));
    assert.equal(socket.of('$stream-write').filter(([, id]) => id === stream.id).length, 0);
  }
  const { socket, streams } = connected(NO_RESUME);
  streams.emit('objects', createStream({ objectMode: true }));
  const bytes = await upload(streams, 1000);
  const events = socket.of('$stream');
  assert.equal(events[0][2].credit, undefined); // the object stream leaves the offer
  assert.equal(events[1][2].credit, OFFER.credits); // to the first byte stream
  assert.equal(socket.of('$stream-write').filter(([, id]) => id === bytes.id).length, 1);
});

test('a resumed session does not take its offer a second time', async () => {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { maxChunk: 4000 });
  socket.serve('$stream-hello', { version: 1, features: FEATURES, initial: OFFER, resume: { token: 'a'.repeat(43) } });
  await upload(streams, 5000);
  socket.drop();
  socket.reconnect();
  // The server never got the first stream's event, so its offer is untaken and the resume
  // answer's hello repeats it: the event sent again keeps its credit, and no later stream takes more.
  socket.serve('$stream-hello', {
    version: 1,
    features: FEATURES,
    initial: OFFER,
    resume: { token: 'b'.repeat(43), streams: {}, events: 0 },
  });
  await tick();
  await tick();
  const later = createStream();
  streams.emit('put2', later);
  await tick();
  const credits = socket.of('$stream').map((e) => [e[1], e[2].credit]);
  assert.ok(credits.some(([name, credit]) => name === 'put' && credit === 3), JSON.stringify(credits));
  assert.deepEqual(
    credits.filter(([name]) => name === 'put2'),
    [['put2', undefined]],
  );
});
