/*
 * A member of a room for tests/test_matrix.py: a Socket.IO 4 client (websocket transport) that reads
 * every stream sent to it as 'file'(stream, meta, ack), with our JavaScript client (js/sio-stream.js,
 * --client ours) or the npm socket.io-stream package (--client npm).
 *
 *   node matrix_member.mjs <url> --client ours|npm [--leave-after N]
 *
 * Prints "READY <sid>" once connected; for each stream "GOT <size> <sha256>" (and acks the digest),
 * or, with --leave-after N, disconnects once N bytes arrived and prints "LEFT <error>" once the stream
 * failed (socket.io-stream never fails a stream on a disconnect: it prints "LEFT closed" when the
 * connection is gone with the stream unfinished). Exits once stdin closes.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { io } from 'socket.io-client';
import { ss as ours } from '../../../js/sio-stream.js';

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const url = args[0];
const option = (name, fallback) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : fallback);
const client = option('--client', 'ours');
const leaveAfter = option('--leave-after', null) === null ? null : Number(option('--leave-after'));

const socket = io(url, { transports: ['websocket'], reconnection: false });
socket.on('connect', () => console.log(`READY ${socket.id}`));

let leaving = false;
function received(size) {
  if (leaveAfter !== null && size >= leaveAfter && !leaving) {
    leaving = true;
    socket.disconnect();
  }
}

if (client === 'ours') {
  ours(socket).on('file', async (stream) => {
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of stream.readable) {
        hash.update(chunk);
        size += chunk.length;
        received(size);
      }
    } catch (error) {
      console.log(`LEFT ${error.message}`);
      return null;
    }
    const digest = hash.digest('hex');
    console.log(`GOT ${size} ${digest}`);
    return digest;
  });
} else {
  const ssNpm = require('socket.io-stream');
  ssNpm(socket).on('file', (stream, meta, ack) => {
    const hash = createHash('sha256');
    let size = 0;
    let ended = false;
    stream.on('data', (chunk) => {
      hash.update(chunk);
      size += chunk.length;
      received(size);
    });
    stream.on('error', (error) => console.log(`LEFT ${error.message || error}`));
    stream.on('end', () => {
      ended = true;
      const digest = hash.digest('hex');
      console.log(`GOT ${size} ${digest}`);
      if (typeof ack === 'function') ack(digest);
    });
    socket.on('disconnect', () => {
      if (!ended) console.log('LEFT closed');
    });
  });
}

process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  socket.disconnect();
  process.exit(0);
});
