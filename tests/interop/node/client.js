'use strict';
/*
 * Socket.IO 4 client (websocket transport) playing the CLIENT role of one interop scenario (see ../README.md).
 *
 *   node client.js <url> <scenario> [--pkg socket.io-stream|@sap_oss/node-socketio-stream|ss|sap]
 *                  [--base64] [--trace] [--linger]
 *   node client.js --scenarios          # prints the scenario names, one per line
 *   (env fallbacks: SS_PKG, SS_FORCE_BASE64=1, SS_TRACE=1; CLIENT_TIMEOUT_MS, default 30000)
 *
 * Prints one JSON line on stdout: {"ok":true,"scenario":...,"pkg":...,...details} and exits 0, or
 * {"ok":false,...,"error":...} (also on stderr) and exits 1; exits 2 after the timeout.
 * --linger: after a scenario passed, print its result line at once but stay connected until stdin reaches
 * EOF, then disconnect and print it again (lets a Python server check its state before the disconnect).
 *
 * Scenario -> what the client does (server events are documented in server.js):
 *   file         s1 = new stream, emit file(s1, {size: 300000}, ack(sha)); s2 = new stream,
 *                emit sha(s2, ack(sha, n)); s1.pipe(s2); both shas must be equal
 *   flowing      emit echo(s, {hi: 1}); write 'foo', 'bar', end; on ss 'echo'(r, obj): obj == {hi: 1},
 *                r read in flowing mode ('data') == 'foobar'
 *   paused       same, r read in paused mode ('readable' + read())
 *   binary       emit echo(s); write [0,1], [2,3], bytes 0..255, end; echoed bytes must be equal
 *   object       s = objectMode stream; emit echo(s); write {foo:0}, {bar:1}, 'baz', [1,2], {n:{a:[true,null]}}
 *                and end; the echoed stream must yield the same 5 values
 *   echo-list    emit echo([s1, s2], 'tag'); s1 <- 'a','b', s2 <- 'c'; echo([r1, r2], 'tag'): 'ab' and 'c'
 *   echo-dict    emit echo({foo: s1, bar: s2}); s1 <- 'x', s2 <- 'yz'; echo({foo: r1, bar: r2}): 'x', 'yz'
 *   sendback     s = stream {allowHalfOpen: true}; emit sendBack(s); write 'foo','bar', end; s reads 'foobar'
 *   multi        emit multi(s1, s2); s1 <- 'foo','bar', end; s2 reads 'foobar'
 *   ack          emit ack(s, cb); write 'foo','bar', end; cb(r): r reads 'foobar'
 *   ack-list     emit ack([s1, {foo: s2}], cb); cb([r1, {foo: r2}]): r1, r2 carry what s1, s2 got
 *   ack-dict     emit ack({a: s1, b: s2, n: 1}, cb); cb({a: r1, b: r2, n: 1})
 *   client-error emit clientError(s, cb); s.emit('error', Error('error on the client')); cb(msg) with that msg
 *   server-error emit serverError(s, 'error on the server'); s emits 'error' with that message
 *   big-up       emit sha(s, cb); write 8 MiB random bytes (chunk sizes cycle common.CHUNK_SIZES); cb(sha, n) match
 *   big-down     emit download({size: 8 MiB}, cb); cb(r, sha): bytes read from r must hash to sha
 *   many         20 uploads (sha) + 20 downloads (download) of 0..300000 random bytes, all at once
 *   base64       with ss.forceBase64 = true: 1 MiB upload via sha, and the 'binary' echo
 *   reverse      handles ss 'upload'(size, ack) by ack(new stream) fed with `size` random bytes, and ss
 *                'sha'(stream, ack) by ack(sha, n); emits reverse({size: 1 MiB}, cb) and checks cb's report
 *   drop         emit drop(up, cb); cb(down): writes random bytes into `up` and reads `down` until they fail; the
 *                server disconnects mid-transfer, so both must fail with 'Connection aborted'
 */
const crypto = require('crypto');
const assert = require('assert');
const { io } = require('socket.io-client');
const c = require('./common');

const MiB = 1024 * 1024;
const text = (buf) => buf.toString('utf8');

function emitAck(s, event, ...args) {
  return new Promise((resolve) => s.emit(event, ...args, (...res) => resolve(res)));
}
function nextEcho(s) {
  return new Promise((resolve) => s.on('echo', (...args) => resolve(args)));
}
function writeAll(stream, chunks) {
  for (const ch of chunks) stream.write(ch);
  stream.end();
}
function readPaused(stream) {
  return new Promise((resolve, reject) => {
    let data = '';
    stream.on('readable', () => {
      let chunk;
      while ((chunk = stream.read()) !== null) data += chunk;
    });
    stream.on('end', () => resolve(data));
    stream.on('error', reject);
  });
}
async function upload(ss, s, size) {
  const data = crypto.randomBytes(size);
  const st = ss.createStream();
  const ack = emitAck(s, 'sha', st);
  c.writeChunks(st, data);
  const [sha, n] = await ack;
  assert.strictEqual(n, size, 'byte count acked by sha');
  assert.strictEqual(sha, c.sha256(data), 'sha256 acked by sha');
  return { size };
}
async function download(s, size) {
  const [st, sha] = await emitAck(s, 'download', { size });
  const r = await c.hashStream(st);
  assert.strictEqual(r.bytes, size, 'downloaded byte count');
  assert.strictEqual(r.sha256, sha, 'downloaded sha256');
  return { size, chunks: r.chunks };
}
async function binaryEcho(ss, s) {
  const st = ss.createStream();
  const echoed = nextEcho(s);
  s.emit('echo', st);
  const chunks = [Buffer.from([0, 1]), Buffer.from([2, 3]), Buffer.from([...Array(256).keys()])];
  writeAll(st, chunks);
  const [r] = await echoed;
  assert.ok(Buffer.concat(chunks).equals(await c.collect(r)), 'echoed bytes');
}

const scenarios = {
  async file(ss, s) {
    const s1 = ss.createStream();
    const s2 = ss.createStream();
    const sent = emitAck(s, 'file', s1, { size: 300000 });
    const got = emitAck(s, 'sha', s2);
    s1.pipe(s2);
    const [[a], [b, n]] = await Promise.all([sent, got]);
    assert.strictEqual(b, a, 'sha of the file sent == sha of the bytes piped back');
    return { sha256: a, bytes: n };
  },

  async flowing(ss, s) {
    const st = ss.createStream();
    const echoed = nextEcho(s);
    s.emit('echo', st, { hi: 1 });
    writeAll(st, ['foo', 'bar']);
    const [r, obj] = await echoed;
    assert.deepStrictEqual(obj, { hi: 1 });
    assert.strictEqual(text(await c.collect(r)), 'foobar');
  },

  async paused(ss, s) {
    const st = ss.createStream();
    const echoed = nextEcho(s);
    s.emit('echo', st, { hi: 1 });
    writeAll(st, ['foo', 'bar']);
    const [r, obj] = await echoed;
    assert.deepStrictEqual(obj, { hi: 1 });
    assert.strictEqual(await readPaused(r), 'foobar');
  },

  async binary(ss, s) {
    await binaryEcho(ss, s);
  },

  async object(ss, s) {
    const values = [{ foo: 0 }, { bar: 1 }, 'baz', [1, 2], { n: { a: [true, null] } }];
    const st = ss.createStream({ objectMode: true });
    const echoed = nextEcho(s);
    s.emit('echo', st);
    writeAll(st, values);
    const [r] = await echoed;
    assert.deepStrictEqual(await c.collect(r), values);
  },

  async 'echo-list'(ss, s) {
    const [s1, s2] = [ss.createStream(), ss.createStream()];
    const echoed = nextEcho(s);
    s.emit('echo', [s1, s2], 'tag');
    writeAll(s1, ['a', 'b']);
    writeAll(s2, ['c']);
    const [[r1, r2], tag] = await echoed;
    assert.strictEqual(tag, 'tag');
    assert.ok(r1 instanceof ss.IOStream && r2 instanceof ss.IOStream);
    assert.deepStrictEqual((await Promise.all([c.collect(r1), c.collect(r2)])).map(text), ['ab', 'c']);
  },

  async 'echo-dict'(ss, s) {
    const [s1, s2] = [ss.createStream(), ss.createStream()];
    const echoed = nextEcho(s);
    s.emit('echo', { foo: s1, bar: s2 });
    writeAll(s1, ['x']);
    writeAll(s2, ['y', 'z']);
    const [{ foo, bar }] = await echoed;
    assert.deepStrictEqual((await Promise.all([c.collect(foo), c.collect(bar)])).map(text), ['x', 'yz']);
  },

  async sendback(ss, s) {
    const st = ss.createStream({ allowHalfOpen: true });
    s.emit('sendBack', st);
    writeAll(st, ['foo', 'bar']);
    assert.strictEqual(text(await c.collect(st)), 'foobar');
  },

  async multi(ss, s) {
    const [s1, s2] = [ss.createStream(), ss.createStream()];
    s.emit('multi', s1, s2);
    writeAll(s1, ['foo', 'bar']);
    assert.strictEqual(text(await c.collect(s2)), 'foobar');
  },

  async ack(ss, s) {
    const st = ss.createStream();
    const acked = emitAck(s, 'ack', st);
    writeAll(st, ['foo', 'bar']);
    const [r] = await acked;
    assert.strictEqual(text(await c.collect(r)), 'foobar');
  },

  async 'ack-list'(ss, s) {
    const [s1, s2] = [ss.createStream(), ss.createStream()];
    const acked = emitAck(s, 'ack', [s1, { foo: s2 }]);
    writeAll(s1, ['one']);
    writeAll(s2, ['two']);
    const [[r1, { foo: r2 }]] = await acked;
    assert.deepStrictEqual((await Promise.all([c.collect(r1), c.collect(r2)])).map(text), ['one', 'two']);
  },

  async 'ack-dict'(ss, s) {
    const [s1, s2] = [ss.createStream(), ss.createStream()];
    const acked = emitAck(s, 'ack', { a: s1, b: s2, n: 1 });
    writeAll(s1, ['A']);
    writeAll(s2, ['B']);
    const [{ a, b, n }] = await acked;
    assert.strictEqual(n, 1);
    assert.deepStrictEqual((await Promise.all([c.collect(a), c.collect(b)])).map(text), ['A', 'B']);
  },

  async 'client-error'(ss, s) {
    const st = ss.createStream();
    const acked = emitAck(s, 'clientError', st);
    st.emit('error', new Error('error on the client'));
    const [msg] = await acked;
    assert.strictEqual(msg, 'error on the client');
  },

  async 'server-error'(ss, s) {
    const st = ss.createStream();
    s.emit('serverError', st, 'error on the server');
    const err = await new Promise((resolve) => st.on('error', resolve));
    assert.strictEqual(err.message, 'error on the server');
    return { remote: err.remote === true };
  },

  'big-up': (ss, s) => upload(ss, s, 8 * MiB),

  'big-down': (ss, s) => download(s, 8 * MiB),

  async many(ss, s) {
    const size = () => crypto.randomInt(0, 300001);
    const jobs = [];
    for (let i = 0; i < 20; i++) jobs.push(upload(ss, s, size()), download(s, size()));
    await Promise.all(jobs);
    return { streams: jobs.length };
  },

  async base64(ss, s) {
    assert.strictEqual(s.forceBase64, true);
    await upload(ss, s, MiB);
    await binaryEcho(ss, s);
  },

  async reverse(ss, s) {
    const size = MiB;
    const data = crypto.randomBytes(size);
    s.on('upload', (n, ack) => {
      assert.strictEqual(n, size);
      const st = ss.createStream();
      ack(st);
      c.writeChunks(st, data);
    });
    s.on('sha', (st, ack) => c.hashStream(st).then((r) => ack(r.sha256, r.bytes)));
    const [r] = await emitAck(s, 'reverse', { size });
    assert.strictEqual(r.uploadSha, c.sha256(data), 'server hashed what the client uploaded');
    assert.strictEqual(r.uploadBytes, size);
    assert.strictEqual(r.clientSha, r.sentSha, 'client hashed what the server sent');
    assert.strictEqual(r.clientBytes, size);
  },

  async drop(ss, s) {
    const up = ss.createStream();
    const upError = c.errorOf(up);
    const [down] = await emitAck(s, 'drop', up);
    const downError = c.errorOf(down);
    down.resume(); // read and discard
    c.writeUntilError(up);
    const [upMsg, downMsg] = await Promise.all([upError, downError]);
    assert.strictEqual(upMsg, 'Connection aborted', 'upload stream error');
    assert.strictEqual(downMsg, 'Connection aborted', 'download stream error');
    return { up: upMsg, down: downMsg };
  },
};

async function main() {
  const opts = c.parseArgs(process.argv.slice(2));
  if (opts.positional[0] === '--scenarios') {
    process.stdout.write(Object.keys(scenarios).join('\n') + '\n');
    return;
  }
  const [url, name] = opts.positional;
  const result = { ok: false, scenario: name, pkg: opts.pkg, base64: opts.base64 || name === 'base64' };
  const finish = (code, extra) => {
    const line = JSON.stringify(Object.assign(result, extra));
    if (code) process.stderr.write(`client.js ${name} FAILED: ${line}\n`);
    process.stdout.write(line + '\n', () => process.exit(code));
  };
  const timeoutMs = Number(process.env.CLIENT_TIMEOUT_MS || 30000);
  setTimeout(() => finish(2, { error: `timeout after ${timeoutMs} ms` }), timeoutMs);
  try {
    if (!url || !scenarios[name]) throw new Error(`usage: client.js <url> <${Object.keys(scenarios).join('|')}>`);
    const ss = c.loadStreamPackage(opts.pkg, result.base64);
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    if (opts.trace) c.trace(socket, 'client');
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    const started = Date.now();
    const details = await scenarios[name](ss, ss(socket));
    result.ok = true;
    Object.assign(result, { ms: Date.now() - started }, details);
    if (opts.linger) {
      process.stdout.write(JSON.stringify(Object.assign({ lingering: true }, result)) + '\n');
      await new Promise((resolve) => {
        process.stdin.on('end', resolve);
        process.stdin.resume();
      });
    }
    socket.disconnect();
    finish(0, {});
  } catch (e) {
    finish(1, { error: e && e.message ? e.message : String(e) });
  }
}

if (require.main === module) main();
module.exports = { scenarios };
