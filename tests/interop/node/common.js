'use strict';
// Helpers shared by server.js, client.js and run_node_pair.js.
const crypto = require('crypto');

const PACKAGES = {
  'socket.io-stream': 'socket.io-stream',
  '@sap_oss/node-socketio-stream': '@sap_oss/node-socketio-stream',
  ss: 'socket.io-stream', // short aliases
  sap: '@sap_oss/node-socketio-stream',
};

// Parses `--pkg NAME --port N --base64 --trace --no-stdin --linger` plus positional args.
// Env fallbacks: SS_PKG, PORT, SS_FORCE_BASE64=1, SS_TRACE=1.
function parseArgs(argv) {
  const o = {
    pkg: process.env.SS_PKG || 'socket.io-stream',
    port: Number(process.env.PORT || 0),
    base64: process.env.SS_FORCE_BASE64 === '1',
    trace: process.env.SS_TRACE === '1',
    stdin: true,
    linger: false,
    positional: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--pkg') o.pkg = argv[++i];
    else if (a === '--port') o.port = Number(argv[++i]);
    else if (a === '--base64') o.base64 = true;
    else if (a === '--trace') o.trace = true;
    else if (a === '--no-stdin') o.stdin = false;
    else if (a === '--linger') o.linger = true;
    else o.positional.push(a);
  }
  if (!PACKAGES[o.pkg]) throw new Error('unknown stream package: ' + o.pkg);
  o.pkg = PACKAGES[o.pkg];
  return o;
}

function loadStreamPackage(name, forceBase64) {
  const ss = require(PACKAGES[name]);
  // Read by ss(socket) when the wrapper is first created.
  ss.forceBase64 = !!forceBase64;
  return ss;
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// Chunk sizes a writer cycles through: tiny, odd and large (each < 1,000,000 bytes).
const CHUNK_SIZES = [65536, 1, 1000, 200000, 4096, 65537];

// Writes `buf` into `stream` in chunks of `sizes` (cycled), honouring backpressure, then ends it.
function writeChunks(stream, buf, sizes = CHUNK_SIZES) {
  let off = 0;
  let i = 0;
  (function next() {
    while (off < buf.length) {
      const n = sizes[i++ % sizes.length];
      const ok = stream.write(buf.subarray(off, off + n));
      off += n;
      if (!ok) return stream.once('drain', next);
    }
    stream.end();
  })();
}

// Writes random 64 KiB chunks into `stream` (honouring backpressure) until the stream fails.
function writeUntilError(stream) {
  const chunk = crypto.randomBytes(65536);
  let failed = false;
  stream.on('error', () => { failed = true; });
  (function next() {
    while (!failed && stream.write(chunk));
    if (!failed) stream.once('drain', next);
  })();
}

// Resolves with the message of the first error `stream` emits.
const errorOf = (stream) => new Promise((resolve) => stream.once('error', (e) => resolve(e.message)));

// Resolves with the concatenated Buffer (or the array of objects in object mode) once `stream` ends.
function collect(stream) {
  return new Promise((resolve, reject) => {
    const parts = [];
    stream.on('data', (c) => parts.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      if (stream._readableState.objectMode) resolve(parts);
      else resolve(Buffer.concat(parts.map((c) => (Buffer.isBuffer(c) ? c : Buffer.from(c)))));
    });
  });
}

// Resolves with {sha256, bytes, chunks} of everything read from `stream`.
function hashStream(stream) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    let bytes = 0;
    let chunks = 0;
    stream.on('data', (c) => { h.update(c); bytes += c.length; chunks++; });
    stream.on('error', reject);
    stream.on('end', () => resolve({ sha256: h.digest('hex'), bytes, chunks }));
  });
}

// Logs every Socket.IO event in and out on stderr (--trace), with binary chunks shown by size.
function trace(socket, label) {
  const show = (args) => args.map((a) => {
    if (Buffer.isBuffer(a) || a instanceof ArrayBuffer) return `<${a.byteLength} bytes>`;
    if (typeof a === 'function') return '<ack>';
    const s = JSON.stringify(a);
    return s && s.length > 120 ? s.slice(0, 117) + '...' : s;
  }).join(' ');
  socket.onAny((ev, ...args) => process.stderr.write(`${label} <- ${ev} ${show(args)}\n`));
  socket.onAnyOutgoing((ev, ...args) => process.stderr.write(`${label} -> ${ev} ${show(args)}\n`));
}

module.exports = { PACKAGES, parseArgs, loadStreamPackage, sha256, CHUNK_SIZES, writeChunks, writeUntilError, errorOf, collect, hashStream, trace };
