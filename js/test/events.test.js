// Negotiated `resume`, its second part: application events and their answers exactly once,
// against a fake socket.io-client socket. What the resume hello carries (`events`, `awaiting`),
// which events go again (and their streams afresh), the replies in both directions, the bounds,
// and a server that sends neither key. End to end through a cutting link:
// tests/interop/test_js_client_events.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ANSWER_LOST,
  FEATURES,
  MAX_KEPT_ANSWERS,
  MAX_UNCONFIRMED_EVENTS,
  ResumeRefusedError,
  StreamError,
  StreamSocket,
  createStream,
} from '../sio-stream.js';
import { fakeSocket } from './fake-socket.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));
const TOKEN = 'a'.repeat(43);

function connected() {
  const socket = fakeSocket();
  const streams = new StreamSocket(socket, { maxChunk: 1000 });
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: TOKEN } });
  return { socket, streams };
}

/** Drop, reconnect, and return the resume hello the client sent. */
function dropAndReconnect(socket) {
  socket.drop();
  socket.reconnect();
  return socket.of('$stream-hello').at(-1)[1].resume;
}

/** The server's answer to the resume hello (`extra`: its events / awaiting keys). */
function answer(socket, streams = {}, extra = { events: 0, awaiting: [] }) {
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: 'b'.repeat(43), streams, ...extra } });
}

const settled = (promise) => promise.then((v) => ({ value: v }), (e) => ({ error: e }));
const events = (socket) => socket.of('$stream').map(([, name]) => name);

test('the resume hello carries the events received and the events whose answer has not come', async () => {
  const { socket, streams } = connected();
  streams.on('note', () => undefined);
  socket.serve('$stream', 'note', 1);
  socket.serve('$stream', 'note', 2);
  streams.emit('plain');
  const call = streams.call('ask');
  streams.emit('with-ack', () => undefined);
  socket.of('$stream')[2].at(-1)(); // the third event's ack came
  await tick();
  const resume = dropAndReconnect(socket);
  assert.equal(resume.events, 2);
  assert.deepEqual(resume.awaiting, [2]);
  assert.equal(resume.token, TOKEN);
  answer(socket, {}, { events: 3, awaiting: [] });
  assert.deepEqual(events(socket), [], 'the server had every event');
  socket.serve('$stream-hello', { resume: { reply: 2, args: ['yes', { size: 3 }] } });
  assert.deepEqual(await call, ['yes', { size: 3 }]);
});

test('events beyond the server count go again in order before anything emitted meanwhile; their streams start afresh', async () => {
  const { socket, streams } = connected();
  streams.emit('one');
  const stream = createStream();
  streams.emit('put', stream, { name: 'f' });
  const writer = stream.writable.getWriter();
  const written = writer.write(new Uint8Array(1000).fill(7));
  const upload = createStream();
  streams.emit('get', upload); // a stream we read: its credit went nowhere
  const reader = upload.readable.getReader();
  const first = reader.read();
  await tick();
  assert.equal(socket.of('$stream-read').length, 1, 'the download was granted its first read');
  dropAndReconnect(socket);
  streams.emit('later');
  answer(socket, {}, { events: 1, awaiting: [] });
  const order = socket.sent.filter(([name]) => name !== '$stream-hello').map(([name, a]) => (name === '$stream' ? a : name));
  assert.deepEqual(order, ['put', 'get', '$stream-read', 'later']);
  assert.equal(socket.of('$stream')[0][2].$stream, stream.id);
  assert.ok(!stream.error && !upload.error, 'streams of events sent again are not failed');
  assert.equal(socket.of('$stream-read')[0][1], upload.id, 'the download asks for its window again');
  // The upload's chunk goes again from its first byte once the server grants credit.
  socket.serve('$stream-read', stream.id, 1000, 4, { consumed: 0, received: 0 });
  await tick();
  const writes = socket.of('$stream-write').filter(([, id]) => id === stream.id);
  assert.equal(writes.length, 1);
  assert.deepEqual([...writes[0][2]].slice(0, 3), [7, 7, 7]);
  await written;
  socket.serve('$stream-write', upload.id, new Uint8Array(5), 'buffer');
  assert.equal((await first).value.byteLength, 5);
});

test('acks and reads of a stream an event carried confirm it, and what it proves before it', async () => {
  const { socket, streams } = connected();
  streams.emit('a', () => undefined);
  streams.emit('b');
  const stream = createStream();
  streams.emit('c', stream);
  streams.emit('d');
  assert.equal(streams._sentEvents.kept.length, 4);
  socket.of('$stream')[0].at(-1)();
  assert.equal(streams._sentEvents.kept.length, 3);
  socket.serve('$stream-read', stream.id, 1000, 1, { consumed: 0, received: 0 });
  assert.deepEqual(streams._sentEvents.kept.map((e) => e.args[1]), ['d']);
  dropAndReconnect(socket);
  answer(socket, { [stream.id]: [0, 1, 1000, 0] }, { events: 3, awaiting: [] });
  assert.deepEqual(events(socket), ['d']);
});

test('a reply after the resume settles call() once; a lost answer rejects it as the Python side does', async () => {
  const { socket, streams } = connected();
  const kept = streams.call('a');
  const lost = settled(streams.call('b'));
  const acked = [];
  streams.emit('c', (...args) => acked.push(args));
  const resume = dropAndReconnect(socket);
  assert.deepEqual(resume.awaiting, [1, 2, 3]);
  answer(socket, {}, { events: 3, awaiting: [] });
  socket.serve('$stream-hello', { resume: { reply: 1, args: [42] } });
  socket.serve('$stream-hello', { resume: { reply: 2, lost: true } });
  socket.serve('$stream-hello', { resume: { reply: 3, args: ['x'] } });
  socket.serve('$stream-hello', { resume: { reply: 3, args: ['again'] } });
  socket.serve('$stream-hello', { resume: { reply: 99, args: [] } });
  assert.deepEqual(await kept, [42]);
  const { error } = await lost;
  assert.ok(error instanceof StreamError);
  assert.equal(error.message, ANSWER_LOST);
  assert.deepEqual(acked, [['x']]);
  assert.deepEqual(streams._sentEvents.awaited(), []);
  assert.ok(streams.resumable, 'a reply hello is not taken for a new hello');
});

test('answers our handlers gave are sent again when the server waits for them, running ones when they end', async () => {
  const { socket, streams } = connected();
  let finish;
  const slow = new Promise((resolve) => (finish = resolve));
  streams.on('quick', (x) => x * 2);
  streams.on('slow', () => slow);
  const acks = [];
  socket.serve('$stream', 'quick', 2, (...a) => acks.push(['quick', a]));
  socket.serve('$stream', 'quick', 5, (...a) => acks.push(['late', a])); // say its ack is lost with the drop
  socket.serve('$stream', 'slow', (...a) => acks.push(['slow', a]));
  socket.serve('$stream', 'quick', 0); // no ack wanted
  await Promise.resolve();
  assert.deepEqual(acks, [['quick', [4]], ['late', [10]]], 'the quick handlers answered before the drop');
  socket.drop();
  await tick();
  socket.serve('$stream', 'quick', 9, () => acks.push(['dead transport', []]));
  socket.reconnect();
  answer(socket, {}, { events: 0, awaiting: [2, 3, 4, 7] });
  const replies = socket.of('$stream-hello').filter(([, h]) => h.resume && 'reply' in h.resume).map(([, h]) => h.resume);
  assert.deepEqual(replies, [{ reply: 2, args: [10] }, { reply: 4, lost: true }]);
  assert.equal(acks.length, 2, 'no ack goes on the new connection');
  finish('done');
  await tick();
  const after = socket.of('$stream-hello').filter(([, h]) => h.resume && 'reply' in h.resume).map(([, h]) => h.resume);
  assert.deepEqual(after.at(-1), { reply: 3, args: ['done'] });
  assert.equal(streams._eventsReceived, 4, 'the event of the dead transport is not counted');
});

test('the records are bounded: unconfirmed events, awaited answers, kept answers', async () => {
  const { socket, streams } = connected();
  const n = MAX_UNCONFIRMED_EVENTS + 50;
  const calls = [];
  for (let i = 0; i < n; i++) calls.push(settled(streams.call('e', i)));
  assert.equal(streams._sentEvents.kept.length, MAX_UNCONFIRMED_EVENTS);
  assert.equal(streams._sentEvents.awaited().length, MAX_UNCONFIRMED_EVENTS);
  streams.on('q', () => 1);
  for (let i = 0; i < MAX_KEPT_ANSWERS + 50; i++) socket.serve('$stream', 'q', () => undefined);
  await tick();
  assert.equal(streams._answers.kept.size, MAX_KEPT_ANSWERS);
  const resume = dropAndReconnect(socket);
  assert.equal(resume.awaiting.length, MAX_UNCONFIRMED_EVENTS);
  // The server got none: the 50 forgotten events cannot go again, so none does.
  answer(socket, {}, { events: 0, awaiting: [] });
  assert.deepEqual(events(socket), []);
  // Calls whose answer was forgotten fail; the others wait for the server's replies.
  await tick();
  const failed = [];
  for (const c of calls.slice(0, 50)) failed.push((await c).error?.message);
  assert.deepEqual(new Set(failed), new Set(['Connection aborted']));
  // A peer asking for more answers than the bound gets at most that many replies.
  socket.sent = [];
  socket.drop();
  socket.reconnect();
  const many = Array.from({ length: 3000 }, (_, i) => i + 1);
  answer(socket, {}, { events: n, awaiting: many });
  assert.ok(socket.of('$stream-hello').length - 2 <= MAX_KEPT_ANSWERS);
});

test('a server that sends neither key: no replays, no replies, pending calls fail with Connection aborted', async () => {
  const { socket, streams } = connected();
  const call = settled(streams.call('a'));
  streams.emit('b');
  dropAndReconnect(socket);
  const later = streams.call('c');
  answer(socket, {}, {});
  assert.deepEqual(events(socket), ['c'], 'only the event emitted while suspended goes');
  const { error } = await call;
  assert.equal(error.message, 'Connection aborted');
  socket.of('$stream')[0].at(-1)('ok');
  assert.deepEqual(await later, ['ok']);
});

test('a refused resume fails the calls of the old session with ResumeRefusedError, not those emitted meanwhile', async () => {
  const { socket, streams } = connected();
  const old = settled(streams.call('a'));
  dropAndReconnect(socket);
  const meanwhile = streams.call('b');
  socket.serve('$stream-hello', { version: 1, features: FEATURES, resume: { token: 'c'.repeat(43), refused: 'unknown session' } });
  const { error } = await old;
  assert.ok(error instanceof ResumeRefusedError);
  assert.deepEqual(events(socket), ['b']);
  socket.of('$stream')[0].at(-1)(1);
  assert.deepEqual(await meanwhile, [1]);
  assert.equal(streams._sentEvents.sent, 1, 'the fresh session numbers from 1');
});
