'use strict';
/*
 * A Socket.IO 4 client (websocket transport) that receives streams sent to a room, with the JavaScript
 * stream package given by --pkg (socket.io-stream or @sap_oss/node-socketio-stream).
 *
 *   node room_client.js <url> [--pkg socket.io-stream|@sap_oss/node-socketio-stream]
 *
 * Prints {"ready":true} once connected. On ss 'file'(stream, meta, ack) it reads the whole stream, prints
 * {"size":n,"sha256":hex}, acks with the hex digest, and exits 0 once stdin closes.
 */
const crypto = require('crypto');
const io = require('socket.io-client');

const args = process.argv.slice(2);
const url = args[0];
const pkgIndex = args.indexOf('--pkg');
const pkg = pkgIndex >= 0 ? args[pkgIndex + 1] : 'socket.io-stream';
const ss = require(pkg);

const socket = io(url, { transports: ['websocket'] });
socket.on('connect', () => console.log(JSON.stringify({ ready: true, id: socket.id })));
ss(socket).on('file', (stream, meta, ack) => {
  const hash = crypto.createHash('sha256');
  let size = 0;
  stream.on('data', (chunk) => {
    size += chunk.length;
    hash.update(chunk);
  });
  stream.on('end', () => {
    const digest = hash.digest('hex');
    console.log(JSON.stringify({ size, sha256: digest }));
    if (typeof ack === 'function') ack(digest);
  });
});
process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  socket.disconnect();
  process.exit(0);
});
