// The sio-stream file server's page: list, upload (drop or pick, several files), download,
// per-transfer progress (bytes the server accepted), speed, time left, cancel.
// URL parameters (for people and tests): ?transport=websocket|polling, ?download=sw|picker|blob.
import { io } from '/socket.io.esm.min.js';
import {
  StreamSocket, createStream, sendBlob, receiveTo, saveStream, BLOB_WARNING_SIZE,
} from '/sio-stream.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const TOKEN_KEY = 'sio-stream-token';
let config = { token: false, maxUpload: null };
let socket = null;
let streams = null;
let folder = decodeURIComponent(location.hash.slice(1));

// -- words ---------------------------------------------------------------------------------------
// The command line's units (sio_stream/_progress.py): sizes in binary units (1.5 KiB, 400.0 MiB),
// rates in decimal megabytes per second (120.3 MB/s), as network throughput is quoted.
function formatSize(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[i]}`;
}

function formatRate(bytesPerSecond) {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

function formatTime(seconds) {
  if (!Number.isFinite(seconds)) return '';
  if (seconds < 1) return 'less than a second left';
  if (seconds < 60) return `${Math.ceil(seconds)} s left`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds - m * 60)} s left`;
  return `${Math.floor(m / 60)} h ${m % 60} min left`;
}

/** An error as a person should read it. */
function explain(error) {
  const text = String(error && error.message !== undefined ? error.message : error);
  if (/Connection aborted|transport close|transport error|xhr poll error|websocket error/i.test(text)) {
    return 'The connection to the server was lost before the transfer finished. Nothing was kept on the server.';
  }
  if (/invalid token/i.test(text)) return 'The server refused this token.';
  if (/cancelled by you/.test(text)) return 'Cancelled.';
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function joinPath(dir, name) {
  return dir ? `${dir}/${name}` : name;
}

function showMessage(text) {
  const box = $('message');
  box.textContent = text;
  box.hidden = !text;
}

// -- connection ------------------------------------------------------------------------------------
function setStatus(state, text) {
  $('status').dataset.state = state;
  $('status-text').textContent = text;
}

function askToken(error) {
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = error || '';
  $('token').focus();
}

// A tab that is closed or navigated away ends its transfers at once: a dropped connection
// would keep them on the server for its resume timeout, waiting for a tab that is not coming back.
addEventListener('pagehide', () => {
  if (socket) socket.disconnect();
});

function connect(token) {
  if (socket) socket.close();
  const transports = params.get('transport') ? [params.get('transport')] : ['websocket', 'polling'];
  socket = io(location.origin, { transports, tryAllTransports: true, auth: token ? { token } : {} });
  streams = new StreamSocket(socket);
  socket.on('connect', async () => {
    setStatus('online', 'connected');
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    $('login').hidden = true;
    $('app').hidden = false;
    await refresh();
  });
  socket.on('connect_error', (err) => {
    if (/invalid token/i.test(err.message)) {
      sessionStorage.removeItem(TOKEN_KEY);
      socket.close();
      setStatus('offline', 'not signed in');
      askToken(token ? 'The server refused this token.' : '');
      return;
    }
    setStatus('offline', 'cannot reach the server; retrying…');
  });
  socket.on('disconnect', (reason) => {
    if (reason !== 'io client disconnect') setStatus('offline', 'connection lost; reconnecting…');
  });
}

// -- listing ---------------------------------------------------------------------------------------
function renderCrumbs() {
  const nav = $('crumbs');
  nav.replaceChildren();
  const parts = folder ? folder.split('/') : [];
  const link = (label, path) => {
    const a = document.createElement('a');
    a.textContent = label;
    a.href = `#${encodeURIComponent(path)}`;
    return a;
  };
  nav.append(link('Files', ''));
  parts.forEach((part, i) => {
    const sep = document.createElement('span');
    sep.className = 'sep';
    sep.textContent = '/';
    nav.append(sep, link(part, parts.slice(0, i + 1).join('/')));
  });
  $('folder-title').textContent = folder ? parts[parts.length - 1] : 'Files';
}

async function refresh() {
  renderCrumbs();
  if (!socket || !socket.connected) return;
  let reply;
  try {
    [reply] = await streams.call('ls', folder);
  } catch (e) {
    showMessage(`Cannot list this folder: ${explain(e)}`);
    return;
  }
  const body = $('files');
  body.replaceChildren();
  if (reply.error) {
    showMessage(`Cannot list this folder: ${explain(reply.error)}`);
    return;
  }
  showMessage('');
  const entries = [...reply.entries].sort((a, b) => (b.dir - a.dir) || a.name.localeCompare(b.name));
  if (folder) entries.unshift({ name: '..', dir: true, up: true });
  for (const entry of entries) {
    const row = document.createElement('tr');
    row.dataset.name = entry.name;
    const name = document.createElement('td');
    name.className = 'name';
    const icon = document.createElement('span');
    icon.className = `icon ${entry.dir ? 'dir' : 'file'}`;
    icon.setAttribute('aria-hidden', 'true');
    if (entry.dir) {
      const a = document.createElement('a');
      const target = entry.up ? folder.split('/').slice(0, -1).join('/') : joinPath(folder, entry.name);
      a.href = `#${encodeURIComponent(target)}`;
      a.textContent = entry.up ? 'Parent folder' : entry.name;
      name.append(icon, a);
    } else {
      const span = document.createElement('span');
      span.textContent = entry.name;
      name.append(icon, span);
    }
    const size = document.createElement('td');
    size.className = 'num muted';
    size.textContent = entry.dir ? '' : formatSize(entry.size);
    const actions = document.createElement('td');
    actions.className = 'actions';
    if (!entry.dir) {
      const button = document.createElement('button');
      button.className = 'small';
      button.textContent = 'Download';
      button.addEventListener('click', () => download(joinPath(folder, entry.name), entry.name, entry.size));
      actions.append(button);
    }
    row.append(name, size, actions);
    body.append(row);
  }
  $('empty').hidden = entries.some((e) => !e.up);
}

// -- transfers -------------------------------------------------------------------------------------
class TransferRow {
  constructor(direction, name, total) {
    this.total = total;
    this.started = performance.now();
    this.samples = [];
    this.controller = new AbortController();
    this.el = document.createElement('li');
    this.el.className = 'transfer';
    this.el.dataset.name = name;
    this.el.dataset.direction = direction;
    this.el.dataset.state = 'running';
    const head = document.createElement('div');
    head.className = 'transfer-head';
    const title = document.createElement('span');
    title.className = 'transfer-name';
    title.textContent = `${direction === 'up' ? '↑' : '↓'} ${name}`;
    this.detail = document.createElement('span');
    this.detail.className = 'transfer-detail muted';
    this.cancel = document.createElement('button');
    this.cancel.className = 'small ghost cancel';
    this.cancel.textContent = 'Cancel';
    this.cancel.addEventListener('click', () => this.controller.abort(new Error('cancelled by you')));
    head.append(title, this.detail, this.cancel);
    this.bar = document.createElement('progress');
    this.bar.max = Math.max(total, 1);
    this.bar.value = 0;
    this.note = document.createElement('div');
    this.note.className = 'transfer-note';
    this.el.append(head, this.bar, this.note);
    $('transfers').prepend(this.el);
    $('transfers-card').hidden = false;
    this.progress(0);
  }

  progress(done) {
    const now = performance.now();
    this.samples.push([now, done]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 3000) this.samples.shift();
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      const [t0, b0] = this.samples[0];
      const [t1, b1] = this.samples[this.samples.length - 1];
      const rate = t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
      this.bar.value = b1;
      const parts = [`${formatSize(b1)} of ${formatSize(this.total)}`];
      if (rate > 0) parts.push(formatRate(rate), formatTime((this.total - b1) / rate));
      if (this.el.dataset.state === 'running') this.detail.textContent = parts.join(' · ');
    });
  }

  finish(text) {
    this.el.dataset.state = 'done';
    this.bar.value = this.bar.max;
    const seconds = (performance.now() - this.started) / 1000;
    this.detail.textContent = `${formatSize(this.total)} in ${seconds.toFixed(1)} s · ${formatRate(this.total / Math.max(seconds, 0.001))}`;
    this.note.textContent = text;
    this.cancel.remove();
  }

  fail(error) {
    const cancelled = this.controller.signal.aborted;
    this.el.dataset.state = cancelled ? 'cancelled' : 'failed';
    this.detail.textContent = cancelled ? 'cancelled' : 'failed';
    this.note.textContent = explain(error);
    this.note.classList.add(cancelled ? 'muted' : 'error');
    this.cancel.remove();
  }

  refuse(text) {
    this.el.dataset.state = 'refused';
    this.detail.textContent = 'not sent';
    this.note.textContent = text;
    this.note.classList.add('error');
    this.cancel.remove();
  }
}

async function upload(file) {
  const row = new TransferRow('up', file.name, file.size);
  if (config.maxUpload !== null && file.size > config.maxUpload) {
    row.refuse(`${file.name} is ${formatSize(file.size)}: larger than this server accepts (${formatSize(config.maxUpload)}). Nothing was sent.`);
    return;
  }
  if (!socket.connected) {
    row.refuse('Not connected to the server.');
    return;
  }
  const stream = createStream();
  const path = joinPath(folder, file.name);
  try {
    // The reply comes once the server stored the file; when the connection drops on the way, the
    // session resumes on the new connection and the reply comes on it (docs/protocol.md, resume).
    const outcome = streams.call('put', stream, { path, size: file.size }).then(
      (reply) => ({ reply }),
      (error) => ({ error }),
    );
    let failure = null;
    await sendBlob(stream, file, { signal: row.controller.signal, onProgress: (n) => row.progress(n) })
      .catch((e) => (failure = e));
    if (failure && (row.controller.signal.aborted || !socket.connected)) throw failure;
    // A refusal (a bad path, the size limit) fails the stream too: the reply says why, in words.
    const late = () => new Promise((_, reject) => setTimeout(() => reject(failure), 10_000));
    const result = await (failure ? Promise.race([outcome, late()]) : outcome);
    if (result.error) throw failure || result.error;
    const [answer] = result.reply;
    if (answer && answer.error) throw new Error(answer.error);
    if (failure) throw failure;
    if (!answer || answer.size !== file.size) throw new Error(`the server stored ${answer && answer.size} bytes of ${file.size}`);
    row.finish(`Uploaded · sha256 ${answer.sha256.slice(0, 16)}…`);
  } catch (e) {
    stream.destroy(e);
    row.fail(row.controller.signal.aborted ? row.controller.signal.reason : e);
  }
  refresh();
}

function downloadMethod() {
  const wanted = params.get('download');
  if (wanted) return wanted;
  if (navigator.serviceWorker && navigator.serviceWorker.controller) return 'sw';
  if (typeof window.showSaveFilePicker === 'function') return 'picker';
  return 'blob';
}

/**
 * Hand the stream to the service worker, which answers /__download/<id> with it (see sw.js):
 * the worker pulls chunks over a MessagePort and each chunk's buffer is transferred, so the page
 * holds no copy of what it passed on.
 */
async function saveWithServiceWorker(readable, name, size) {
  const id = crypto.getRandomValues(new Uint32Array(4)).join('-');
  const channel = new MessageChannel();
  const port = channel.port1;
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the download helper did not answer: reload the page')), 10_000);
    port.onmessage = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  navigator.serviceWorker.controller.postMessage({ id, name, size, port: channel.port2 }, [channel.port2]);
  await ready;
  const reader = readable.getReader();
  port.onmessage = async (event) => {
    if (event.data === 'cancel') {
      reader.cancel(new Error('the download was cancelled in the browser')).catch(() => {});
      port.close();
      return;
    }
    try {
      const { done, value } = await reader.read();
      if (done) {
        port.postMessage({ done: true });
        port.close();
        return;
      }
      // Transfer the chunk's own buffer (a view into a larger one is copied first).
      const chunk = value.byteOffset === 0 && value.byteLength === value.buffer.byteLength ? value : value.slice();
      port.postMessage({ chunk: chunk.buffer }, [chunk.buffer]);
    } catch (e) {
      port.postMessage({ error: explain(e) });
      port.close();
    }
  };
  const frame = document.createElement('iframe');
  frame.hidden = true;
  frame.src = `/__download/${id}`;
  document.body.append(frame);
  setTimeout(() => frame.remove(), 60_000);
}

async function download(path, name, size) {
  const row = new TransferRow('down', name, size);
  const method = downloadMethod();
  let stream;
  try {
    if (method === 'picker') {
      // Ask where to save first, while the click still counts as a user gesture.
      const handle = await window.showSaveFilePicker({ suggestedName: name });
      const [s, info] = await streams.call('get', path);
      if (info.error) throw new Error(info.error);
      stream = s;
      await receiveTo(stream, await handle.createWritable(), {
        total: info.size, signal: row.controller.signal, onProgress: (n) => row.progress(n),
      });
      row.finish('Saved where you chose.');
      return;
    }
    const [s, info] = await streams.call('get', path);
    if (info.error) throw new Error(info.error);
    stream = s;
    if (method === 'sw') {
      let received = 0;
      let finished;
      const allPassed = new Promise((resolve, reject) => (finished = { resolve, reject }));
      const counter = new TransformStream({
        transform(chunk, controller) {
          received += chunk.byteLength;
          row.progress(received);
          controller.enqueue(chunk);
        },
        flush() {
          finished.resolve();
        },
      });
      row.controller.signal.addEventListener('abort', () => stream.destroy(row.controller.signal.reason));
      const readable = stream.readable.pipeThrough(counter);
      stream.done.then(() => stream.error && finished.reject(stream.error));
      await saveWithServiceWorker(readable, name, info.size);
      await allPassed;
      if (received !== info.size) throw new Error(`received ${received} bytes of ${info.size}`);
      row.finish('Saved to your downloads folder.');
      return;
    }
    const result = await saveStream(stream, {
      name, total: info.size, method: 'blob', signal: row.controller.signal,
      onProgress: (n) => row.progress(n),
      onWarning: () => showMessage(`This browser has no way to write ${name} to disk as it arrives: it is held in memory (${formatSize(info.size)}) until the end.`),
    });
    if (result.bytes !== info.size) throw new Error(`received ${result.bytes} bytes of ${info.size}`);
    row.finish(info.size > BLOB_WARNING_SIZE ? 'Saved (held in memory first).' : 'Saved to your downloads folder.');
  } catch (e) {
    if (stream) stream.destroy(e);
    row.fail(row.controller.signal.aborted ? row.controller.signal.reason : e);
  }
}

// -- wiring ----------------------------------------------------------------------------------------
function uploadAll(files) {
  for (const file of files) upload(file);
}

function wire() {
  const drop = $('drop');
  for (const type of ['dragenter', 'dragover']) {
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add('over');
    });
  }
  for (const type of ['dragleave', 'drop']) drop.addEventListener(type, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    uploadAll(e.dataTransfer.files);
  });
  $('picker').addEventListener('change', (e) => {
    uploadAll(e.target.files);
    e.target.value = '';
  });
  $('refresh').addEventListener('click', () => refresh());
  $('clear-done').addEventListener('click', () => {
    for (const li of [...$('transfers').children]) if (li.dataset.state !== 'running') li.remove();
    $('transfers-card').hidden = !$('transfers').children.length;
  });
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    $('login-error').textContent = '';
    setStatus('connecting', 'connecting…');
    connect($('token').value);
  });
  window.addEventListener('hashchange', () => {
    folder = decodeURIComponent(location.hash.slice(1));
    refresh();
  });
}

async function main() {
  wire();
  config = await (await fetch('/config.json')).json();
  $('limit').textContent = config.maxUpload !== null ? `up to ${formatSize(config.maxUpload)} per file` : '';
  if (navigator.serviceWorker && window.isSecureContext) {
    navigator.serviceWorker.register('/sw.js').catch(() => {});
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (config.token && !token) {
    setStatus('offline', 'not signed in');
    askToken('');
    return;
  }
  connect(token);
}

main();
