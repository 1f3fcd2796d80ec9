'use strict';
/*
 * Socket.IO 4 server playing the SERVER role of the interop scenarios (see ../README.md).
 *
 *   node server.js [--pkg socket.io-stream|@sap_oss/node-socketio-stream|ss|sap] [--port 0]
 *                  [--base64] [--trace] [--no-stdin]
 *   (env fallbacks: SS_PKG, PORT, SS_FORCE_BASE64=1, SS_TRACE=1)
 *
 * Listens on 127.0.0.1, prints `LISTENING <port>` on stdout, then serves until killed or until
 * stdin reaches EOF (unless stdin is a TTY or --no-stdin). maxHttpBufferSize is 10 MB.
 * --base64 sets ss.forceBase64 (binary chunks sent as base64 strings). --trace logs all events on stderr.
 * Unexpected exceptions are logged on stderr as `UNCAUGHT ...` and the server keeps serving.
 *
 * ss(socket) events handled (args after the event name; `ack` = the event's ack callback):
 *   file      (stream, {size}, ack)  writes `size` random bytes from a temp file into `stream` (fs chunks of
 *                                    64 KiB); after `stream` finishes: ack(sha256hex)
 *   sha       (stream, ack)          reads `stream` to the end: ack(sha256hex, byteCount)
 *   echo      (...args)              emits ss 'echo' back with the same args, every stream (at any depth)
 *                                    replaced by a new stream with the same options that the received one
 *                                    is piped into
 *   sendBack  (stream)               stream.pipe(stream)   (client creates it with allowHalfOpen: true)
 *   multi     (s1, s2)               s1.pipe(s2)
 *   ack       (...args, ack)         ack(...args) with streams replaced as for 'echo'
 *   clientError (stream, ack)        when `stream` fails: ack(err.message)
 *   serverError (stream, msg)        fails `stream` with Error(msg) ($stream-error goes to the client)
 *   download  ({size}, ack)          creates a stream s, ack(s, sha256hex) and writes `size` random bytes
 *                                    into s (chunk sizes cycle through common.CHUNK_SIZES)
 *   reverse   ({size}, ack)          server-initiated streams: emits ss 'upload'(size, ack2) to the client,
 *                                    the client acks a stream carrying `size` bytes, the server hashes it;
 *                                    then emits ss 'sha'(s, ack3) to the client, writes `size` random bytes
 *                                    into s, the client acks (sha256hex, byteCount). Finally
 *                                    ack({uploadSha, uploadBytes, sentSha, clientSha, clientBytes}).
 *   drop      (up, ack)              creates a stream `down`, ack(down), writes random bytes into `down` until it
 *                                    fails, reads `up`; once 262144 bytes of `up` arrived, disconnects the client.
 *                                    When both streams failed, prints `DROPPED {"up": msg, "down": msg}` on stdout.
 */
const http = require('http');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { Server } = require('socket.io');
const c = require('./common');

const opts = c.parseArgs(process.argv.slice(2));
const ss = c.loadStreamPackage(opts.pkg, opts.base64);

process.on('uncaughtException', (e) => process.stderr.write(`UNCAUGHT ${e && e.stack}\n`));

// Replaces every stream in `v` by a new stream fed from it.
function echo(v) {
  if (v instanceof ss.IOStream) return v.pipe(ss.createStream(v.options));
  if (Array.isArray(v)) return v.map(echo);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = echo(v[k]);
    return o;
  }
  return v;
}

function onConnection(socket) {
  if (opts.trace) c.trace(socket, 'server');
  const s = ss(socket);

  s.on('file', (stream, { size }, ack) => {
    const file = path.join(os.tmpdir(), `sio-stream-interop-${process.pid}-${crypto.randomUUID()}`);
    const data = crypto.randomBytes(size);
    fs.writeFileSync(file, data);
    const input = fs.createReadStream(file).on('open', () => fs.unlink(file, () => {})); // POSIX: reads go on
    input.pipe(stream).on('finish', () => ack(c.sha256(data)));
  });

  s.on('sha', (stream, ack) => {
    c.hashStream(stream).then((r) => ack(r.sha256, r.bytes), (e) => ack('error: ' + e.message));
  });

  s.on('echo', (...args) => s.emit('echo', ...echo(args)));

  s.on('sendBack', (stream) => stream.pipe(stream));

  s.on('multi', (s1, s2) => s1.pipe(s2));

  s.on('ack', (...args) => {
    const ack = args.pop();
    ack(...echo(args));
  });

  s.on('clientError', (stream, ack) => stream.on('error', (err) => ack(err.message)));

  s.on('serverError', (stream, msg) => stream.emit('error', new Error(msg)));

  s.on('download', ({ size }, ack) => {
    const data = crypto.randomBytes(size);
    const stream = ss.createStream();
    ack(stream, c.sha256(data));
    c.writeChunks(stream, data);
  });

  s.on('reverse', ({ size }, ack) => {
    s.emit('upload', size, (up) => {
      c.hashStream(up).then((u) => {
        const data = crypto.randomBytes(size);
        const out = ss.createStream();
        s.emit('sha', out, (clientSha, clientBytes) => {
          ack({ uploadSha: u.sha256, uploadBytes: u.bytes, sentSha: c.sha256(data), clientSha, clientBytes });
        });
        c.writeChunks(out, data);
      });
    });
  });

  s.on('drop', (up, ack) => {
    const down = ss.createStream();
    const errors = Promise.all([c.errorOf(up), c.errorOf(down)]);
    ack(down);
    c.writeUntilError(down);
    let received = 0;
    up.on('data', (chunk) => {
      received += chunk.length;
      if (received >= DROP_AFTER && socket.connected) socket.disconnect(true);
    });
    errors.then(([upMsg, downMsg]) => {
      process.stdout.write(`DROPPED ${JSON.stringify({ up: upMsg, down: downMsg })}\n`);
    });
  });
}

// `drop` disconnects the client once this many bytes of its upload arrived (the transfer is then mid-way).
const DROP_AFTER = 262144;

const httpServer = http.createServer();
const io = new Server(httpServer, { maxHttpBufferSize: 1e7 });
io.on('connection', onConnection);
httpServer.listen(opts.port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${httpServer.address().port}\n`);
});

if (opts.stdin && !process.stdin.isTTY) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));
