'use strict';
/*
 * The JavaScript baseline of the sio_stream benchmarks: socket.io-stream 0.9.1 on Socket.IO 4.8.4,
 * with the library's defaults (stop-and-wait, one $stream-write per application write).
 *
 *   node peer.js server                 prints `LISTENING <port>`; serves until SIGTERM or stdin EOF
 *   node peer.js client URL JOBS_JSON   runs the jobs in order, prints one JSON line per job
 *
 * Jobs: {op: "upload"|"download", size, write}. Application writes are `write` bytes (default 64 KiB,
 * the chunk size of Node's fs streams), honouring backpressure. Each result line carries bytes,
 * seconds and the CPU seconds (utime+stime from /proc/<pid>/stat) and VmRSS/VmHWM of both processes,
 * the same fields as the Python peer (../peer.py) prints.
 */
const fs = require('fs');
const http = require('http');
const crypto = require('crypto');
const ss = require('socket.io-stream');

const CLK_TCK = 100; // Linux USER_HZ

function stats() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)[1]);
  return {
    cpu: (Number(fields[11]) + Number(fields[12])) / CLK_TCK,
    rss_kib: kib('VmRSS'),
    hwm_kib: kib('VmHWM'),
    pid: process.pid,
  };
}

const POOL = crypto.randomBytes(8 * 1024 * 1024);

// Writes `size` bytes into `stream` in `write`-byte slices of a random pool, then ends it.
function feed(stream, size, write) {
  let sent = 0;
  (function next() {
    while (sent < size) {
      const n = Math.min(write, size - sent);
      const off = sent % (POOL.length - write + 1);
      const ok = stream.write(POOL.subarray(off, off + n));
      sent += n;
      if (!ok) return stream.once('drain', next);
    }
    stream.end();
  })();
}

function count(stream) {
  return new Promise((resolve, reject) => {
    let n = 0;
    stream.on('data', (c) => {
      n += c.length;
    });
    stream.on('end', () => resolve(n));
    stream.on('error', reject);
  });
}

function server() {
  const { Server } = require('socket.io');
  const httpServer = http.createServer();
  const io = new Server(httpServer, { maxHttpBufferSize: 1e8 });
  io.on('connection', (socket) => {
    const s = ss(socket);
    s.on('upload', (stream, meta, ack) => count(stream).then((n) => ack(n)));
    s.on('download', (meta, ack) => {
      const stream = ss.createStream();
      ack(stream);
      feed(stream, meta.size, meta.write);
    });
    socket.on('bench-stats', (ack) => ack(stats()));
  });
  httpServer.listen(0, '127.0.0.1', () => {
    process.stdout.write(`LISTENING ${httpServer.address().port}\n`);
  });
  if (!process.stdin.isTTY) {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  }
  process.on('SIGTERM', () => process.exit(0));
}

async function client(url, jobs) {
  const { io } = require('socket.io-client');
  const socket = io(url, { transports: ['websocket'] });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const call = (event) => new Promise((resolve) => socket.emit(event, resolve));
  const s = ss(socket);
  for (const job of jobs) {
    const write = job.write || 65536;
    const serverBefore = await call('bench-stats');
    const before = stats();
    const t0 = process.hrtime.bigint();
    let n;
    if (job.op === 'upload') {
      n = await new Promise((resolve) => {
        const stream = ss.createStream();
        s.emit('upload', stream, { size: job.size }, resolve);
        feed(stream, job.size, write);
      });
    } else if (job.op === 'download') {
      n = await new Promise((resolve, reject) => {
        s.emit('download', { size: job.size, write }, (stream) => count(stream).then(resolve, reject));
      });
    } else {
      throw new Error('unknown op ' + job.op);
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const after = stats();
    const serverAfter = await call('bench-stats');
    process.stdout.write(
      JSON.stringify({
        op: job.op,
        impl: 'js',
        bytes: n,
        seconds,
        client_cpu: after.cpu - before.cpu,
        server_cpu: serverAfter.cpu - serverBefore.cpu,
        client_mem: { VmRSS: after.rss_kib, VmHWM: after.hwm_kib },
        server_mem: { VmRSS: serverAfter.rss_kib, VmHWM: serverAfter.hwm_kib },
      }) + '\n',
    );
  }
  socket.close();
}

const [role, url, jobs] = process.argv.slice(2);
if (role === 'server') server();
else if (role === 'client') {
  client(url, JSON.parse(jobs)).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`${e && e.stack}\n`);
      process.exit(1);
    },
  );
} else {
  process.stderr.write('usage: node peer.js server | client URL JOBS_JSON\n');
  process.exit(2);
}
