/*
 * Our JavaScript client (js/sio-stream.js) in Node: one upload, then one download, through a
 * link with a long round trip (tests/interop/test_js_windows.py), to see both read windows grow.
 *
 *   node window_client.mjs '<json config>'      config: {url, up: bytes, down: bytes}
 *
 * Prints one JSON line: {sent, received, readWindow: the download's window at its end (chunks),
 * initialWindow}, or {error}.
 */
import { io } from 'socket.io-client';
import { StreamSocket, createStream } from '../../../js/sio-stream.js';

const config = JSON.parse(process.argv[2]);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const socket = io(config.url, { transports: ['websocket'], reconnection: false });
const streams = new StreamSocket(socket);
try {
  await new Promise((resolve) => socket.once('connect', resolve));
  await streams.negotiated(30_000);
  const up = createStream();
  const stored = streams.call('upload', up);
  const writer = up.writable.getWriter();
  const block = new Uint8Array(256 * 1024).fill(7);
  for (let sent = 0; sent < config.up; sent += block.byteLength) await writer.write(block.slice());
  await writer.close();
  const [sent] = await stored;
  const [down] = await streams.call('download', config.down);
  let received = 0;
  const reader = down.readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.byteLength;
  }
  print({ sent, received, readWindow: down.readWindow, initialWindow: streams.window });
} catch (e) {
  print({ error: String(e?.stack ?? e) });
} finally {
  socket.close();
}
