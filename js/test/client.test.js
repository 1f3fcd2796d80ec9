// The client in Node 20, with node's built-in test runner (`node --test`, no extra dependency),
// against the Python file server (`sio-stream serve`) and against a Node socket.io-stream server
// (tests/interop/node/server.js). SIO_STREAM_PYTHON names the Python that has sio_stream
// installed (default: the repository's .venv); the interop server needs `make node` first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import { StreamSocket, createStream, sendBlob, receiveTo, rechunk, StreamError } from '../sio-stream.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const python = process.env.SIO_STREAM_PYTHON || path.join(repo, '.venv', 'bin', 'python');
const nodeInterop = path.join(repo, 'tests', 'interop', 'node');
const sha256 = (data) => createHash('sha256').update(data).digest('hex');

/** Start a child process and resolve with the first stdout line matching `pattern`. */
function start(command, args, options, pattern) {
  const child = spawn(command, args, { ...options, stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.on('exit', (code) => reject(new Error(`${command} exited (${code}) before it listened`)));
    child.stdout.on('data', (data) => {
      out += data;
      const match = pattern.exec(out);
      if (match) resolve({ child, match });
    });
  });
}

let root;
let pyUrl;
let nodeUrl;
const children = [];

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'sio-stream-js-'));
  const py = await start(python, ['-m', 'sio_stream', 'serve', root, '--port', '0', '--quiet', '--token', 'secret'],
    { cwd: repo }, /(http:\/\/[^\s;]+)/);
  children.push(py.child);
  pyUrl = py.match[1];
  const node = await start(process.execPath, ['server.js', '--port', '0'], { cwd: nodeInterop }, /LISTENING (\d+)/);
  children.push(node.child);
  nodeUrl = `http://127.0.0.1:${node.match[1]}`;
});

after(() => {
  for (const child of children) child.kill();
  rmSync(root, { recursive: true, force: true });
});

async function connect(url, { token, transports = ['websocket'] } = {}) {
  const socket = io(url, { transports, auth: token ? { token } : undefined, reconnection: false, forceNew: true });
  const streams = new StreamSocket(socket);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return { socket, streams };
}

/** A ReadableStream of `data` in pieces of `piece` bytes (as Blob.stream() gives 64 KiB). */
function piecewise(data, piece = 65536) {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= data.length) return controller.close();
      controller.enqueue(new Uint8Array(data.subarray(at, at + piece)));
      at += piece;
    },
  });
}

async function collect(stream) {
  const parts = [];
  await receiveTo(stream, new WritableStream({ write: (c) => void parts.push(Buffer.from(c)) }));
  return Buffer.concat(parts);
}

for (const transports of [['websocket'], ['polling']]) {
  const via = transports[0];

  test(`python server (${via}): hello, upload, list, download, sha256 both ways`, async () => {
    const { socket, streams } = await connect(pyUrl, { token: 'secret', transports });
    try {
      const features = await streams.negotiated();
      assert.ok(features.has('batch-read') && features.has('unacked-write') && features.has('error-reply'));
      const data = randomBytes(5 * 1024 * 1024 + 123);
      const up = createStream();
      const name = `up-${via}.bin`;
      const reply = streams.call('put', up, { path: name, size: data.length, sha256: sha256(data) });
      const seen = [];
      const sent = await sendBlob(up, new Blob([data]), { onProgress: (n) => seen.push(n) });
      assert.equal(sent, data.length);
      assert.ok(seen.length > 2, 'progress reported several times');
      assert.ok(seen.every((n, i) => i === 0 || n >= seen[i - 1]), 'progress never goes back');
      const [stored] = await reply;
      assert.equal(stored.sha256, sha256(data));
      assert.equal(sha256(readFileSync(path.join(root, name))), sha256(data));

      const [listing] = await streams.call('ls', '');
      assert.ok(listing.entries.some((e) => e.name === name && e.size === data.length));

      const [down, info] = await streams.call('get', name);
      assert.equal(info.size, data.length);
      const got = await collect(down);
      // The server no longer reads a file twice to announce its sha256 before sending it (a
      // sio_stream peer gets the digest with the stream's end): compare with what was uploaded.
      assert.equal(sha256(got), sha256(data));
      await Promise.all([up.done, down.done]);
      assert.equal(streams.streamCount, 0, 'every stream left the registry');
    } finally {
      socket.disconnect();
    }
  });
}

test('rechunk: pieces of any size become chunks of exactly the size asked, the last one shorter', async () => {
  const data = randomBytes(1000);
  const cuts = [0, 1, 7, 7, 300, 301, 999, 1000];
  const source = new ReadableStream({
    start(controller) {
      for (let i = 1; i < cuts.length; i++) controller.enqueue(new Uint8Array(data.subarray(cuts[i - 1], cuts[i])));
      controller.close();
    },
  });
  const out = [];
  await source.pipeThrough(rechunk(128)).pipeTo(new WritableStream({ write: (c) => void out.push(c) }));
  assert.deepEqual(out.map((c) => c.byteLength), [128, 128, 128, 128, 128, 128, 128, 104]);
  assert.deepEqual(Buffer.concat(out), data);
});

test('python server: a wrong token cannot connect', async () => {
  await assert.rejects(connect(pyUrl, { token: 'wrong' }), /invalid token/);
});

test('python server: cancelling an upload midway leaves no file and tells the server', async () => {
  const { socket, streams } = await connect(pyUrl, { token: 'secret' });
  try {
    await streams.negotiated();
    const up = createStream();
    const reply = streams.call('put', up, { path: 'cancelled.bin', size: 64 * 1024 * 1024 });
    const controller = new AbortController();
    let aborted = false;
    // 4 MiB, then a source that never ends: the abort is what stops the upload.
    let given = 0;
    const stalled = new ReadableStream({
      pull(c) {
        if (given < 4 * 1024 * 1024) {
          given += 65536;
          c.enqueue(randomBytes(65536));
          return undefined;
        }
        return new Promise(() => {});
      },
    });
    const sending = sendBlob(up, stalled, {
      signal: controller.signal,
      onProgress: (n) => {
        if (n > 1024 * 1024 && !aborted) {
          aborted = true;
          controller.abort(new Error('cancelled by the user'));
        }
      },
    });
    await assert.rejects(sending);
    const [answer] = await reply;
    assert.match(answer.error, /cancelled by the user/);
    assert.deepEqual(readdirSync(root).filter((n) => n.includes('cancelled')), []);
  } finally {
    socket.disconnect();
  }
});

test('python server: a handler error arrives as a rejected call (error-reply)', async () => {
  const { socket, streams } = await connect(pyUrl, { token: 'secret' });
  try {
    await streams.negotiated();
    const [, reply] = await streams.call('get', '../outside');
    assert.match(reply.error, /'\.\.' is not allowed/);
    await assert.rejects(streams.call('no-such-event'), (e) => e instanceof StreamError && /no handler/.test(e.message));
  } finally {
    socket.disconnect();
  }
});

test('python server: a dropped connection fails the streams with "Connection aborted"', async () => {
  const { socket, streams } = await connect(pyUrl, { token: 'secret' });
  await streams.negotiated();
  const up = createStream();
  streams.emit('put', up, { path: 'dropped.bin', size: 32 * 1024 * 1024 }, () => {});
  const writer = up.writable.getWriter();
  await writer.write(randomBytes(1024 * 1024));
  socket.disconnect();
  await assert.rejects(writer.write(randomBytes(1024)), /Connection aborted/);
  assert.equal(streams.streamCount, 0);
});

test('node socket.io-stream server: upload and download (plain protocol)', async () => {
  const { socket, streams } = await connect(nodeUrl);
  try {
    const features = await streams.negotiated(300);
    assert.equal(features.size, 0, 'a socket.io-stream server does not answer the hello');
    const data = randomBytes(3 * 1024 * 1024 + 7);
    const up = createStream();
    const reply = streams.call('sha', up);
    await piecewise(data).pipeTo(up.writable);
    const [digest, count] = await reply;
    assert.equal(count, data.length);
    assert.equal(digest, sha256(data));
    assert.equal(up.bytesAccepted, data.length);

    const [down, expected] = await streams.call('download', { size: 2 * 1024 * 1024 + 5 });
    const got = await collect(down);
    assert.equal(got.length, 2 * 1024 * 1024 + 5);
    assert.equal(sha256(got), expected);
  } finally {
    socket.disconnect();
  }
});
