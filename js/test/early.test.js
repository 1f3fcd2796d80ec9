// Negotiated `resume` for the events emitted before the server's hello came (issue 21), against
// a fake socket.io-client socket: they are kept and awaited in case the session can resume, so a
// drop that loses their answers does not fail their calls; a hello without `resume` forgets
// them; a resume that cannot send lost events again fails their calls instead of leaving them
// waiting for answers that cannot come.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FEATURES, MAX_UNCONFIRMED_EVENTS, StreamSocket } from '../sio-stream.js';
import { fakeSocket } from './fake-socket.js';

const TOKEN = 'a'.repeat(43);

const hello = (socket, features = FEATURES) =>
  socket.serve('$stream-hello', { version: 1, features, resume: { token: TOKEN } });
const settled = (promise) => promise.then((v) => ({ value: v }), (e) => ({ error: e }));

test('a call emitted before the server hello gets its answer after a drop', async () => {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket);
  const call = settled(streams.call('ask'));
  assert.equal(socket.of('$stream').length, 1, 'out before the server hello came');
  hello(socket);
  socket.drop();
  socket.reconnect();
  const resume = socket.of('$stream-hello').at(-1)[1].resume;
  assert.deepEqual(resume.awaiting, [1]);
  socket.serve('$stream-hello', {
    version: 1,
    features: FEATURES,
    resume: { token: 'b'.repeat(43), streams: {}, events: 1, awaiting: [] },
  });
  socket.serve('$stream-hello', { resume: { reply: 1, args: ['yes'] } });
  assert.deepEqual(await call, { value: ['yes'] });
});

test('an event emitted before the server hello and lost in the drop goes again', async () => {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket);
  const call = streams.call('ask');
  hello(socket);
  socket.drop();
  socket.reconnect();
  socket.serve('$stream-hello', {
    version: 1,
    features: FEATURES,
    resume: { token: 'b'.repeat(43), streams: {}, events: 0, awaiting: [] },
  });
  const again = socket.of('$stream');
  assert.deepEqual(again.map(([, name]) => name), ['ask']);
  again[0].at(-1)('ok');
  assert.deepEqual(await call, ['ok']);
});

test('a hello without resume forgets what was kept', () => {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket);
  streams.call('ask').catch(() => undefined);
  streams.emit('plain');
  assert.equal(streams.statistics().unconfirmedEvents, 2);
  assert.deepEqual(streams._sentEvents.awaited(), [1]);
  hello(socket, FEATURES.filter((f) => f !== 'resume'));
  assert.ok(!streams.resumable);
  assert.equal(streams.statistics().unconfirmedEvents, 0);
  assert.deepEqual(streams._sentEvents.awaited(), []);
  streams.emit('later');
  assert.equal(streams.statistics().unconfirmedEvents, 0);
});

test('calls whose events a resume cannot send again fail instead of waiting', async () => {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket);
  hello(socket);
  const calls = [];
  for (let i = 0; i < MAX_UNCONFIRMED_EVENTS + 1; i++) calls.push(settled(streams.call('e', i)));
  socket.drop();
  socket.reconnect();
  // The server got none, and the oldest was forgotten: none can go again.
  socket.serve('$stream-hello', {
    version: 1,
    features: FEATURES,
    resume: { token: 'b'.repeat(43), streams: {}, events: 0, awaiting: [] },
  });
  assert.deepEqual(socket.of('$stream'), []);
  const messages = new Set();
  for (const c of calls) messages.add((await c).error?.message);
  assert.deepEqual(messages, new Set(['Connection aborted']));
  assert.deepEqual(streams._sentEvents.awaited(), []);
});
