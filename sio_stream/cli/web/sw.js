// Service worker of the sio-stream page: turns a download the page hands over into a normal
// browser download (the browser writes it to disk as it arrives; nothing is held in memory).
//
// The page posts {id, name, size, port} (a MessagePort), this worker answers 'ready' on the port,
// and the page opens /__download/<id>. The response body pulls its chunks over the port: 'pull'
// asks for one, the page answers {chunk} with the chunk's ArrayBuffer transferred (not copied: the
// page keeps nothing of it), {done: true} or {error}; 'cancel' tells the page the download was
// abandoned. A transferable ReadableStream would copy every chunk, and the page's copies then
// piled up as garbage until V8's next collection (up to ~120 MiB in a 1 GiB download).
const pending = new Map();
// Chunks queued ahead of the download manager (at 256 KiB each: 1 MiB).
const QUEUED_CHUNKS = 4;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('message', (event) => {
  const { id, name, size, port } = event.data || {};
  if (typeof id !== 'string' || !(port instanceof MessagePort)) return;
  pending.set(id, { name, size, port });
  port.postMessage('ready');
});

/** The body of a download: chunks pulled from the page over `port`, one request at a time. */
function bodyFrom(port) {
  let answer = null;
  port.onmessage = (event) => {
    const resolve = answer;
    answer = null;
    if (resolve) resolve(event.data || {});
  };
  const ask = () =>
    new Promise((resolve) => {
      answer = resolve;
      port.postMessage('pull');
    });
  return new ReadableStream(
    {
      async pull(controller) {
        const reply = await ask();
        if (reply.chunk instanceof ArrayBuffer) {
          controller.enqueue(new Uint8Array(reply.chunk));
        } else if (reply.done) {
          controller.close();
          port.close();
        } else {
          controller.error(new Error(String(reply.error || 'the page stopped the download')));
          port.close();
        }
      },
      cancel() {
        port.postMessage('cancel');
        port.close();
      },
    },
    new CountQueuingStrategy({ highWaterMark: QUEUED_CHUNKS }),
  );
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  const match = /^\/__download\/([\w-]+)$/.exec(url.pathname);
  if (!match) return;
  const item = pending.get(match[1]);
  pending.delete(match[1]);
  if (!item) {
    event.respondWith(new Response('This download is no longer available.', { status: 404 }));
    return;
  }
  const headers = {
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(item.name)}`,
    'X-Content-Type-Options': 'nosniff',
  };
  if (Number.isInteger(item.size)) headers['Content-Length'] = String(item.size);
  event.respondWith(new Response(bodyFrom(item.port), { headers }));
});
