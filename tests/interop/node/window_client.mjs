/*
 * Our JavaScript client (js/sio-stream.js) in Node: one upload, then one download, through a
 * link with a long round trip (tests/interop/test_js_windows.py), to see both read windows grow.
 *
 *   node window_client.mjs '<json config>'      config: {url, up: bytes, down: bytes, paceMs?, initialCredit?}
 *
 * With `paceMs`, the client's clock is virtual: it moves `paceMs` forward as each chunk arrives
 * and never otherwise, as if the server sent one chunk every `paceMs` over a link without delay
 * (a slow writer: the window drains no faster than that, whatever the machine's timing).
 * `initialCredit` is the client's option (0: the download's window starts small and must grow).
 *
 * Prints one JSON line: {sent, received, readWindow: the download's window at its end (chunks),
 * initialWindow}, or {error}.
 */
import { io } from 'socket.io-client';
import { StreamSocket, createStream } from '../../../js/sio-stream.js';

const config = JSON.parse(process.argv[2]);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const socket = io(config.url, { transports: ['websocket'], reconnection: false });
let now = 0;
if (config.paceMs) {
  // Registered before the StreamSocket's own listener: time moves before the chunk is counted.
  socket.on('$stream-write', () => {
    now += config.paceMs;
  });
}
const options = config.paceMs ? { clock: () => now } : {};
if (config.initialCredit !== undefined) options.initialCredit = config.initialCredit;
const streams = new StreamSocket(socket, options);
try {
  await new Promise((resolve) => socket.once('connect', resolve));
  await streams.negotiated(30_000);
  let sent = 0;
  if (config.up) {
    const up = createStream();
    const stored = streams.call('upload', up);
    const writer = up.writable.getWriter();
    const block = new Uint8Array(256 * 1024).fill(7);
    for (let n = 0; n < config.up; n += block.byteLength) await writer.write(block.slice());
    await writer.close();
    [sent] = await stored;
  }
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
