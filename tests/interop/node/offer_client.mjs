/*
 * Our JavaScript client (js/sio-stream.js) in Node as a reader that offers initial credit
 * (negotiated `initial-credit`): tests/interop/test_js_offer.py.
 *
 *   node offer_client.mjs '<json config>'
 *     config: {url, initialCredit?, download?: bytes, expect?: [names]}
 *
 * With `download`, calls the server's `download(size)` and reads the stream it answers with:
 * prints {received, sha256, primed, offersTaken, seconds} (from the call to the end). With `expect`, tells the server `play` (a plain
 * Socket.IO event) and reads every stream the server sends in `get(stream, name)` events until
 * each expected name settled: prints {results: {name: {bytes, sha256, primed, error, errorName}}}.
 * Then waits for its stdin to close, and prints {streams: registered streams} as it disconnects.
 */
import { createHash } from 'node:crypto';
import { io } from 'socket.io-client';
import { StreamSocket } from '../../../js/sio-stream.js';

const config = JSON.parse(process.argv[2]);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const socket = io(config.url, { transports: ['websocket'], reconnection: false });
const options = config.initialCredit === undefined ? {} : { initialCredit: config.initialCredit };
const streams = new StreamSocket(socket, options);

/** Read `stream` to its end: what arrived and how it ended. */
async function drain(stream) {
  const hash = createHash('sha256');
  let bytes = 0;
  const result = { primed: stream.primed };
  try {
    const reader = stream.readable.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      hash.update(value);
    }
  } catch (e) {
    result.error = e.message;
    result.errorName = e.name;
  }
  return { ...result, bytes, sha256: hash.digest('hex') };
}

try {
  await new Promise((resolve) => socket.once('connect', resolve));
  await streams.negotiated(30_000);
  if (config.download !== undefined) {
    const started = performance.now();
    const [down] = await streams.call('download', config.download);
    const got = await drain(down);
    const seconds = (performance.now() - started) / 1000;
    const { offersTaken } = streams.statistics();
    print({ received: got.bytes, sha256: got.sha256, primed: got.primed, error: got.error, offersTaken, seconds });
  } else {
    const results = {};
    const settled = [];
    let wake;
    streams.on('get', (stream, name) => {
      settled.push(drain(stream).then((r) => {
        results[name] = r;
        wake?.();
      }));
    });
    socket.emit('play');
    while (!config.expect.every((name) => name in results)) await new Promise((resolve) => (wake = resolve));
    print({ results });
  }
  await new Promise((resolve) => process.stdin.on('end', resolve).resume());
  print({ streams: streams.streamCount });
} catch (e) {
  print({ error: String(e?.stack ?? e) });
} finally {
  socket.close();
}
