// Service worker of the sio-stream page: turns a stream the page hands over into a normal browser
// download (the browser writes it to disk as it arrives; nothing is held in memory). The page
// posts {id, name, size, stream} (a transferable ReadableStream) and then opens /__download/<id>.
const pending = new Map();

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('message', (event) => {
  const { id, name, size, stream } = event.data || {};
  if (typeof id !== 'string' || !(stream instanceof ReadableStream)) return;
  pending.set(id, { name, size, stream });
  event.ports[0]?.postMessage('ready');
});

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
  event.respondWith(new Response(item.stream, { headers }));
});
