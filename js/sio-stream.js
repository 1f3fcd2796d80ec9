// sio-stream client: socket.io-stream's wire protocol on a socket.io-client v4 socket, with
// WHATWG streams, and the extensions two sio_stream peers negotiate ($stream-hello).
//
// The wire contract is PROTOCOL.md of the sio_stream project; the Python implementation
// (sio_stream/core/_core.py) is the reference for the extensions. In short:
//   $stream        (event, ...args[, ack])  args with every stream replaced by {"$stream": id, options?}
//   $stream-read   (id, size[, count[, {consumed}]])  the reader grants credit: one chunk (count chunks with
//                  batch-read); with `consumed`, the chunks its application consumed so far
//   $stream-write  (id, chunk, encoding[, ack])  one chunk; acked unless unacked-write was negotiated
//   $stream-end    (id[, ack])              the writer finished (acked when unacked-write was negotiated)
//   $stream-error  (id, message)            the sender failed the stream
//   $stream-hello  ({version, features})    sent by the client on connect; a sio_stream server answers
// Toward a peer that did not announce a feature (socket.io-stream in Node, or an old server) this
// client speaks the plain protocol: one read per chunk it consumed, every write acked.
//
// No build step: an ES module with no imports. Pass it a socket made by socket.io-client's io().

const EV = Object.freeze({
  STREAM: '$stream',
  READ: '$stream-read',
  WRITE: '$stream-write',
  END: '$stream-end',
  ERROR: '$stream-error',
  HELLO: '$stream-hello',
});
const PLACEHOLDER_KEY = '$stream';
const ERROR_REPLY_KEY = '$stream-error';
const OBJECT_BATCH = '$objects';
export const CONNECTION_ABORTED = 'Connection aborted';
export const PROTOCOL_VERSION = 1;
/** Features this client announces (a feature is used only once both peers announced it). */
export const FEATURES = Object.freeze([
  'batch-read',
  'claim',
  'consumed',
  'error-reply',
  'object-batch',
  'unacked-write',
  // Our writer counts progress from the reader's `consumed` reports (or from acks), never from
  // credit, so a sio_stream reader may grow its window for our uploads on a long link.
  'window-growth',
]);
const CONSUMED_KEY = 'consumed';

/** Largest chunk written in one $stream-write: under Socket.IO's default 1,000,000-byte message limit. */
export const DEFAULT_MAX_CHUNK = 256 * 1024;
/** Chunks a reader keeps in flight at first (8 x 256 KiB = 2 MiB per stream), as the Python reader. */
export const DEFAULT_WINDOW = 8;
/**
 * Most chunks a byte reader's window grows to (64 x 256 KiB = 16 MiB per stream; the Python
 * reader's max_window is 32 MiB, not yet measured in a browser) toward a sio_stream peer. The window doubles when the application waited
 * for data although a whole window had gone through since the last change: the round trip, not
 * the reader, is then the limit (measured through benchmarks/delay_proxy.py at 20 ms: window 8
 * carries ~2 MiB per round trip, about half of what Chromium moves on loopback; through
 * benchmarks/link.py at 100 MB/s and 150 ms, a 256 MiB download went from 36 MB/s with 32 chunks
 * to 50 MB/s with 64). A reader that keeps data waiting never grows: what it holds stays under
 * `maxWindow` chunks whatever the link.
 */
export const DEFAULT_MAX_WINDOW = 64;
const DEFAULT_OBJECT_WINDOW = 128;

/** The error every failed stream rejects with. `remote` is true when the peer reported it. */
export class StreamError extends Error {
  constructor(message, { remote = false } = {}) {
    super(message);
    this.name = 'StreamError';
    this.remote = remote;
  }
}

function uuid4() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === 'function') return globalThis.crypto.randomUUID();
  // crypto.randomUUID needs a secure context in browsers (a page served over http on a LAN address is not one).
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function isBinary(value) {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value) || (typeof Blob !== 'undefined' && value instanceof Blob);
}

/** Bytes of a received chunk: ArrayBuffer in browsers, Buffer in Node, base64 text from forceBase64 peers. */
function toBytes(chunk, encoding) {
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') {
    if (encoding === 'base64') {
      const text = atob(chunk);
      const out = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
      return out;
    }
    return new TextEncoder().encode(chunk);
  }
  throw new StreamError(`invalid chunk: expected binary data, got ${chunk === null ? 'null' : typeof chunk}`);
}

/** A Uint8Array that owns its whole buffer: transports may send `view.buffer`, never the neighbours' bytes. */
function ownBuffer(u8) {
  return u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength ? u8 : u8.slice();
}

/** A FIFO of byte chunks with a running size; take(n) splits or joins chunks as needed. */
class ByteQueue {
  constructor() {
    this.chunks = [];
    this.size = 0;
  }
  push(u8) {
    if (u8.byteLength) {
      this.chunks.push(u8);
      this.size += u8.byteLength;
    }
  }
  take(max) {
    const first = this.chunks[0];
    if (first.byteLength >= max) {
      if (first.byteLength === max) this.chunks.shift();
      else this.chunks[0] = first.subarray(max);
      this.size -= max;
      return first.byteLength === max ? first : first.subarray(0, max);
    }
    const n = Math.min(max, this.size);
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const head = this.chunks[0];
      const part = Math.min(head.byteLength, n - at);
      out.set(part === head.byteLength ? head : head.subarray(0, part), at);
      at += part;
      if (part === head.byteLength) this.chunks.shift();
      else this.chunks[0] = head.subarray(part);
    }
    this.size -= n;
    return out;
  }
  clear() {
    this.chunks = [];
    this.size = 0;
  }
}

/** One promise-shaped "something changed" signal, re-armed after each wake. */
class Signal {
  constructor() {
    this._arm();
  }
  _arm() {
    this.promise = new Promise((resolve) => (this._resolve = resolve));
  }
  wake() {
    const resolve = this._resolve;
    this._arm();
    resolve();
  }
}

/**
 * One sub-stream. `readable` is a ReadableStream of Uint8Array (objects in object mode) whose
 * pulls grant the peer credit; `writable` is a WritableStream whose writes wait for the peer's
 * credit (real backpressure: at most `window` chunks in flight). Both directions belong to one
 * id, as in socket.io-stream (a Duplex); with allowHalfOpen false (the default) the end of one
 * direction ends the other.
 */
export class IOStream {
  constructor(options = {}, id = uuid4()) {
    this.id = id;
    this.options = { ...options };
    this.objectMode = Boolean(options.objectMode);
    this.socket = null; // the StreamSocket it was sent on or received from
    this.announced = false;
    this.error = null;
    this.settled = false;
    // reading
    this.inbox = [];
    this.outstanding = 0; // credits granted, chunks not yet arrived
    this.readWindow = 0; // the window, once open (it grows, see DEFAULT_MAX_WINDOW)
    this.sinceGrowth = 0; // chunks consumed since the window opened or last grew
    this.owed = 0; // consumed chunks not yet granted back (batch-read)
    this.consumedTotal = 0; // chunks the application consumed so far (told to the writer: `consumed`)
    this.readOpen = false; // the window was granted
    this.wantsRead = false;
    this.remoteEnded = false; // the peer's $stream-end arrived
    this.readEnded = false; // no more data and the inbox is empty, or the read side was ended locally
    this.bytesRead = 0;
    // writing
    this.pending = this.objectMode ? [] : new ByteQueue();
    this.credit = 0;
    this.creditTotal = 0;
    this.firstGrant = -1;
    this.unacked = 0;
    this.sentSizes = []; // sizes of chunks sent, oldest first, until accepted
    this.chunksSent = 0;
    this.chunksAccepted = 0;
    this.peerConsumed = 0; // the reader's last `consumed` report (never goes back, never beyond chunksSent)
    this.bytesSent = 0;
    /**
     * Bytes the peer accepted: what its application consumed (its `consumed` reports, sio_stream
     * peers), else acked chunks (plain protocol), else credit returned beyond its first grant.
     */
    this.bytesAccepted = 0;
    this.writeEnding = false;
    this.endSent = false;
    this.endAckPending = false;
    this.writeFinished = false;
    /** Called with (bytesAccepted) whenever the peer accepted more of what was written. */
    this.onaccepted = null;
    /** Resolves once the stream left its socket's registry (finished both ways, or failed); never rejects. */
    this.done = new Promise((resolve) => (this._settle = resolve));
    this._signal = new Signal();
    this.readable = this._makeReadable();
    this.writable = this._makeWritable();
  }

  get pendingSize() {
    return this.objectMode ? this.pending.length : this.pending.size;
  }

  /** Fail the stream: both sides reject with the error, and the peer gets $stream-error. */
  destroy(reason) {
    const message = reason instanceof Error ? reason.message : String(reason ?? 'stream destroyed');
    this._fail(reason instanceof StreamError ? reason : new StreamError(message), true);
  }

  // -- reading -------------------------------------------------------------------------------
  _makeReadable() {
    const source = {
      pull: async (controller) => {
        for (;;) {
          if (this.inbox.length) {
            const value = this.inbox.shift();
            this._consumed(value);
            controller.enqueue(value);
            return;
          }
          if (this.error) throw this.error;
          if (this.readEnded || this.remoteEnded) {
            this._readableEnded();
            controller.close();
            return;
          }
          this._startReading();
          this._maybeGrow();
          await this._signal.promise;
        }
      },
      cancel: (reason) => {
        if (!this.readEnded && !this.error) this.destroy(reason ?? 'reader cancelled');
      },
    };
    // highWaterMark 0: nothing is pulled ahead of the consumer; the credit window is the only buffer.
    return new ReadableStream(source, { highWaterMark: 0 });
  }

  _startReading() {
    this.wantsRead = true;
    if (this.socket && this.announced && !this.readOpen && !this.readEnded) {
      this.readOpen = true;
      this.readWindow = this.objectMode ? this.socket.objectWindow : this.socket.window;
      this._grant(this.readWindow - this.outstanding - this.inbox.length);
    }
  }

  /**
   * The application is about to wait for data: when credit is out, the inbox is empty and a whole
   * window was consumed since the window last changed, data arrives slower than it is read (a long
   * round trip): double the window, up to the socket's maxWindow. Only toward a sio_stream peer
   * (batch-read): a JavaScript writer forgets surplus reads.
   */
  _maybeGrow() {
    const socket = this.socket;
    if (!this.readOpen || this.objectMode || this.readEnded || this.remoteEnded || this.error) return;
    if (!socket || !socket.uses('batch-read') || this.readWindow >= socket.maxWindow) return;
    if (this.inbox.length || this.outstanding === 0 || this.sinceGrowth < this.readWindow) return;
    const more = Math.min(this.readWindow, socket.maxWindow - this.readWindow);
    this.readWindow += more;
    this.sinceGrowth = 0;
    this._grant(more);
  }

  _grant(count) {
    if (count <= 0 || !this.socket || this.error || this.readEnded) return;
    this.outstanding += count;
    this.socket._sendRead(this, count);
  }

  _consumed(value) {
    if (!this.objectMode) this.bytesRead += value.byteLength;
    this.consumedTotal += 1;
    if (!this.readOpen || this.readEnded || this.remoteEnded) return;
    this.sinceGrowth += 1;
    if (this.socket && this.socket.uses('batch-read')) {
      // As the Python reader: credit goes back every quarter window, so that one read event
      // replaces several while three quarters of the window stay in flight.
      this.owed += 1;
      if (this.owed * 4 >= this.readWindow) {
        const owed = this.owed;
        this.owed = 0;
        this._grant(owed);
      }
    } else {
      this._grant(1); // a JavaScript writer remembers only one pending read: one read per chunk
    }
  }

  _receiveWrite(chunk, encoding) {
    if (!this.readOpen || this.readEnded) return this._refuse(`write without a read on stream ${this.id}`);
    let values;
    if (encoding === OBJECT_BATCH && this.objectMode && this.socket.uses('object-batch')) {
      if (!Array.isArray(chunk) || !chunk.length) return this._refuse(`bad object batch on stream ${this.id}`);
      values = chunk;
    } else if (this.objectMode) {
      values = [chunk === null || chunk === undefined ? '' : chunk];
    } else {
      try {
        values = [toBytes(chunk, encoding)];
      } catch (e) {
        return this._refuse(e.message);
      }
    }
    if (values.length > this.outstanding) return this._refuse(`write beyond granted credit on stream ${this.id}`);
    this.outstanding -= values.length;
    for (const v of values) {
      if (!this.objectMode && v.byteLength === 0) this._consumed(v);
      else this.inbox.push(v);
    }
    this._signal.wake();
    return null;
  }

  _refuse(message) {
    this._fail(new StreamError(message), true);
    return message;
  }

  _receiveEnd() {
    this.remoteEnded = true;
    this._signal.wake();
    if (!this.options.allowHalfOpen && !this.writeEnding && !this.error) {
      if (this.pendingSize) {
        this._fail(new StreamError(`the peer ended stream ${this.id} before ${this.pendingSize} buffered bytes could be sent`), false);
        return;
      }
      this._end();
    }
    this._maybeSettle();
  }

  _readableEnded() {
    this.readEnded = true;
    this._maybeSettle();
  }

  // -- writing -------------------------------------------------------------------------------
  _makeWritable() {
    const sink = {
      write: async (chunk) => {
        if (this.error) throw this.error;
        if (this.writeEnding) throw new StreamError(`write after end on stream ${this.id}`);
        if (this.objectMode) {
          this.pending.push(chunk);
        } else {
          const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : toBytes(chunk);
          this.pending.push(bytes);
        }
        this._flush();
        // Backpressure: at most about one chunk waits here beyond the credit window.
        const limit = this.objectMode ? 1 : this.socket ? this.socket.maxChunk : DEFAULT_MAX_CHUNK;
        while (this.pendingSize >= limit && !this.error) await this._signal.promise;
        if (this.error) throw this.error;
      },
      close: async () => {
        this._end();
        while (!this.writeFinished && !this.error) await this._signal.promise;
        if (this.error) throw this.error;
      },
      abort: (reason) => {
        if (!this.error) this.destroy(reason ?? 'writer aborted');
      },
    };
    return new WritableStream(sink, new CountQueuingStrategy({ highWaterMark: 1 }));
  }

  _receiveRead(count, report) {
    if (count <= 0 || this.error || this.writeFinished) return;
    if (this.firstGrant < 0) this.firstGrant = count;
    this.creditTotal += count;
    this.credit = Math.min(this.credit + count, 1024);
    if (this.socket && this.socket.uses('consumed')) {
      // Credit is only a limit (a sio_stream reader opens one chunk, then a whole window, and
      // grows it): what the peer accepted is what it says its application consumed.
      if (report !== undefined && report !== null) {
        const consumed = report && typeof report === 'object' && !Array.isArray(report) ? report[CONSUMED_KEY] : undefined;
        if (!Number.isSafeInteger(consumed) || consumed < this.peerConsumed || consumed > this.chunksSent) {
          this._refuse(`bad consumed report on stream ${this.id}: ${JSON.stringify(report)?.slice(0, 60)}`);
          return;
        }
        this.peerConsumed = consumed;
        this._accept(consumed);
      }
    } else if (this.socket && this.socket.uses('unacked-write')) {
      // No per-write acks: credit beyond the reader's first grant (its window) comes back only
      // for chunks it consumed, so that is what the peer accepted.
      this._accept(this.creditTotal - this.firstGrant);
    }
    this._flush();
  }

  _accept(chunks) {
    let advanced = false;
    while (this.chunksAccepted < Math.min(chunks, this.chunksSent)) {
      this.chunksAccepted += 1;
      this.bytesAccepted += this.sentSizes.shift();
      advanced = true;
    }
    if (advanced && this.onaccepted) this.onaccepted(this.bytesAccepted);
  }

  _flush() {
    const socket = this.socket;
    if (!socket || !this.announced || this.error) return;
    while (this.credit > 0 && this.pendingSize > 0) {
      let chunk;
      let encoding;
      let size;
      if (this.objectMode) {
        chunk = this.pending.shift();
        encoding = 'utf8';
        size = 0;
      } else {
        chunk = ownBuffer(this.pending.take(socket.maxChunk));
        encoding = 'buffer';
        size = chunk.byteLength;
      }
      this.credit -= 1;
      this.chunksSent += 1;
      this.bytesSent += size;
      this.sentSizes.push(size);
      socket._sendWrite(this, chunk, encoding);
    }
    this._signal.wake();
    this._afterWrite();
  }

  _writeAcked(args) {
    this.unacked -= 1;
    if (args.length && args[0]) {
      this._fail(new StreamError(String(args[0]), { remote: true }), false);
      return;
    }
    // An ack says the peer received the chunk; toward a `consumed` peer progress waits for its
    // application to take it.
    if (!this.socket || !this.socket.uses('consumed')) this._accept(this.chunksAccepted + 1);
    this._afterWrite();
  }

  _end() {
    if (this.writeEnding) return;
    this.writeEnding = true;
    this._afterWrite();
  }

  _afterWrite() {
    if (this.writeEnding && !this.endSent && this.pendingSize === 0 && this.announced && this.socket && !this.error) {
      this.endSent = true;
      this.endAckPending = this.socket._sendEnd(this);
      if (!this.options.allowHalfOpen) this.readEnded = this.readEnded || this.inbox.length === 0;
    }
    if (this.endSent && !this.writeFinished && this.unacked === 0 && !this.endAckPending) {
      this.writeFinished = true;
      this._accept(this.chunksSent);
    }
    this._signal.wake();
    this._maybeSettle();
  }

  _endAcked(args) {
    this.endAckPending = false;
    if (args.length && args[0]) {
      if (this.chunksSent) {
        this._fail(new StreamError(String(args[0]), { remote: true }), false);
        return;
      }
      this.remoteEnded = true;
    }
    this._afterWrite();
  }

  // -- lifetime ------------------------------------------------------------------------------
  _fail(error, notify) {
    if (this.error) return;
    this.error = error;
    this.inbox = [];
    if (this.objectMode) this.pending = [];
    else this.pending.clear();
    if (notify && !error.remote && this.socket && this.announced) this.socket._sendError(this, error.message);
    this._remove();
    this._signal.wake();
  }

  _maybeSettle() {
    if (this.settled || !this.socket) return;
    const readDone = this.readEnded || (this.remoteEnded && this.inbox.length === 0);
    // With unacked-write we keep the id until the peer's own $stream-end, so that its end (and
    // any write still in flight) meets a stream we know, as the Python peer does.
    const peerDone = this.remoteEnded || !this.socket.uses('unacked-write');
    if (readDone && this.writeFinished && peerDone) this._remove();
  }

  _remove() {
    if (this.socket && this.socket.streams.get(this.id) === this) this.socket.streams.delete(this.id);
    this.settled = true;
    this._settle();
  }

  toJSON() {
    const p = { [PLACEHOLDER_KEY]: this.id };
    if (Object.keys(this.options).length) p.options = this.options;
    return p;
  }
}

/** A new stream to send in an event or an ack. */
export function createStream(options = {}) {
  return new IOStream(options);
}

/**
 * The streams of one socket.io-client socket (the counterpart of socket.io-stream's ss(socket)).
 * Listens to the five wire events, announces the extensions on every (re)connect, and fails every
 * stream with "Connection aborted" when the connection drops.
 */
export class StreamSocket {
  constructor(
    socket,
    { window = DEFAULT_WINDOW, maxWindow, objectWindow = DEFAULT_OBJECT_WINDOW, maxChunk = DEFAULT_MAX_CHUNK } = {},
  ) {
    if (!socket || typeof socket.emit !== 'function' || typeof socket.on !== 'function') {
      throw new TypeError('StreamSocket needs a socket.io-client socket');
    }
    this.sio = socket;
    this.window = window;
    /** The most a byte reader's window grows to (never below `window`; `window` itself: fixed). */
    this.maxWindow = Math.max(window, maxWindow ?? DEFAULT_MAX_WINDOW);
    this.objectWindow = objectWindow;
    this.maxChunk = maxChunk;
    this.streams = new Map();
    this.handlers = new Map();
    /** Features both sides announced (empty until a sio_stream server answers the hello). */
    this.peerFeatures = new Set();
    this._helloWaiters = [];
    socket.on(EV.STREAM, (...args) => this._onStream(args));
    socket.on(EV.READ, (id, size, count, report) => this._lookup(id)?._receiveRead(this._readCount(id, count), report));
    socket.on(EV.WRITE, (id, chunk, encoding, ack) => this._onWrite(id, chunk, encoding, ack));
    socket.on(EV.END, (id, ack) => this._onEnd(id, ack));
    socket.on(EV.ERROR, (id, message) => this._lookup(id)?._fail(new StreamError(String(message), { remote: true }), false));
    socket.on(EV.HELLO, (info) => this._onHello(info));
    socket.on('connect', () => this._sendHello());
    socket.on('disconnect', () => this._connectionLost());
    if (socket.connected) this._sendHello();
  }

  /** True once both peers announced `feature`. */
  uses(feature) {
    return this.peerFeatures.has(feature);
  }

  /**
   * Resolves with the peer's features once its $stream-hello arrives, or with an empty set after
   * `timeoutMs` (a socket.io-stream server never answers: the plain protocol is then used).
   */
  negotiated(timeoutMs = 2000) {
    if (this._helloSeen) return Promise.resolve(this.peerFeatures);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.peerFeatures), timeoutMs);
      this._helloWaiters.push(() => {
        clearTimeout(timer);
        resolve(this.peerFeatures);
      });
    });
  }

  /** Handle application event `event`: handler(...args) where streams arrive as IOStreams; its
   * return value (or promise) is the ack when the peer asked for one. */
  on(event, handler) {
    this.handlers.set(event, handler);
    return this;
  }

  off(event) {
    this.handlers.delete(event);
    return this;
  }

  /** Emit `event` with `args` (streams at any depth); a function as last argument receives the ack. */
  emit(event, ...args) {
    const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
    const attached = [];
    const encoded = this._encode(args, attached);
    if (ack) {
      this.sio.emit(EV.STREAM, event, ...encoded, (...reply) => this._onAck(ack, reply));
    } else {
      this.sio.emit(EV.STREAM, event, ...encoded);
    }
    for (const s of attached) this._announce(s);
    return this;
  }

  /**
   * Emit `event` and resolve with the ack's arguments as an array (streams decoded). Rejects with
   * a StreamError when a sio_stream server reports that its handler failed (error-reply), or when
   * the connection drops first.
   */
  call(event, ...args) {
    return new Promise((resolve, reject) => {
      if (!this.sio.connected) {
        reject(new StreamError(CONNECTION_ABORTED));
        return;
      }
      const onDrop = () => reject(new StreamError(CONNECTION_ABORTED));
      this.sio.once('disconnect', onDrop);
      this.emit(event, ...args, (...reply) => {
        this.sio.off('disconnect', onDrop);
        if (reply.length === 1 && reply[0] instanceof StreamError) reject(reply[0]);
        else resolve(reply);
      });
    });
  }

  // -- placeholders ----------------------------------------------------------------------------
  _encode(value, attached) {
    if (value instanceof IOStream) {
      if (value.socket) throw new StreamError(`stream ${value.id} was already sent`);
      if (value.error) throw new StreamError(`stream ${value.id} was destroyed: ${value.error.message}`);
      value.socket = this;
      this.streams.set(value.id, value);
      attached.push(value);
      return value.toJSON();
    }
    if (Array.isArray(value)) return value.map((v) => this._encode(v, attached));
    if (value && typeof value === 'object' && !isBinary(value)) {
      const out = {};
      for (const k of Object.keys(value)) out[k] = this._encode(value[k], attached);
      return out;
    }
    return value;
  }

  _decode(value, found) {
    if (Array.isArray(value)) return value.map((v) => this._decode(v, found));
    if (value && typeof value === 'object' && !isBinary(value)) {
      if (value[PLACEHOLDER_KEY]) {
        const stream = this._received(value[PLACEHOLDER_KEY], value.options);
        found.push(stream);
        return stream;
      }
      const out = {};
      for (const k of Object.keys(value)) out[k] = this._decode(value[k], found);
      return out;
    }
    return value;
  }

  _received(id, options) {
    const stream = new IOStream(options && typeof options === 'object' ? options : {}, String(id));
    if (this.streams.has(stream.id)) {
      stream._fail(new StreamError(`Decoded stream already exists: ${stream.id}`), false);
      this.sio.emit(EV.ERROR, stream.id, stream.error.message);
      return stream;
    }
    stream.socket = this;
    this.streams.set(stream.id, stream);
    this._announce(stream);
    return stream;
  }

  _announce(stream) {
    stream.announced = true;
    if (stream.wantsRead) stream._startReading();
    stream._flush();
    if (stream.error && !stream.error.remote) this._sendError(stream, stream.error.message);
  }

  // -- the peer's events -----------------------------------------------------------------------
  _lookup(id) {
    return typeof id === 'string' ? this.streams.get(id) : undefined;
  }

  _readCount(id, count) {
    // Only a sio_stream peer sends a count (batch-read); it may do so before its hello is seen.
    if (count === undefined || count === null) return 1;
    if (count === 0) return 0; // a claim (the peer received a stream we returned); nothing granted
    if (!Number.isInteger(count) || count < 1) {
      this._lookup(id)?._refuse(`bad read count: ${count}`);
      return 0;
    }
    return count;
  }

  _onWrite(id, chunk, encoding, ack) {
    if (typeof encoding === 'function') [encoding, ack] = [undefined, encoding];
    const stream = this._lookup(id);
    const result = stream ? stream._receiveWrite(chunk, encoding) : `invalid stream id: ${id}`;
    if (typeof ack === 'function') {
      if (result) ack(result);
      else ack();
    }
  }

  _onEnd(id, ack) {
    const stream = this._lookup(id);
    if (stream) stream._receiveEnd();
    if (typeof ack === 'function') {
      if (stream) ack();
      else ack(`invalid stream id: ${id}`);
    }
  }

  _onHello(info) {
    const theirs = info && Array.isArray(info.features) ? info.features : [];
    this.peerFeatures = new Set(theirs.filter((f) => FEATURES.includes(f)));
    this._helloSeen = true;
    for (const wake of this._helloWaiters.splice(0)) wake();
  }

  async _onStream(args) {
    const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
    const [event, ...rest] = args;
    const found = [];
    const decoded = this._decode(rest, found);
    const handler = this.handlers.get(event);
    const refuse = (message) => {
      for (const s of found) s.destroy(message);
      if (ack) {
        if (this.uses('error-reply')) ack({ [ERROR_REPLY_KEY]: message });
        else ack();
      }
    };
    if (!handler) {
      refuse(`no handler for event ${JSON.stringify(event)}`);
      return;
    }
    let result;
    try {
      result = await handler(...decoded);
    } catch (e) {
      refuse(`handler for ${JSON.stringify(event)} failed (${e && e.name ? e.name : 'Error'})`);
      return;
    }
    if (!ack) return;
    const attached = [];
    const reply = result === undefined ? [] : Array.isArray(result) ? result : [result];
    ack(...this._encode(reply, attached));
    for (const s of attached) this._announce(s);
  }

  _onAck(callback, reply) {
    if (
      reply.length === 1 && reply[0] && typeof reply[0] === 'object' && !Array.isArray(reply[0]) &&
      Object.keys(reply[0]).length === 1 && ERROR_REPLY_KEY in reply[0]
    ) {
      callback(new StreamError(String(reply[0][ERROR_REPLY_KEY]), { remote: true }));
      return;
    }
    const found = [];
    const decoded = this._decode(reply, found);
    if (this.uses('claim')) for (const s of found) this.sio.emit(EV.READ, s.id, this.maxChunk, 0);
    callback(...decoded);
  }

  // -- sending -----------------------------------------------------------------------------------
  _sendHello() {
    this.peerFeatures = new Set();
    this._helloSeen = false;
    this.sio.emit(EV.HELLO, { version: PROTOCOL_VERSION, features: [...FEATURES] });
  }

  _sendRead(stream, count) {
    if (this.uses('batch-read') && this.uses('consumed')) {
      this.sio.emit(EV.READ, stream.id, this.maxChunk, count, { [CONSUMED_KEY]: stream.consumedTotal });
    } else if (this.uses('batch-read')) this.sio.emit(EV.READ, stream.id, this.maxChunk, count);
    else for (let i = 0; i < count; i++) this.sio.emit(EV.READ, stream.id, this.maxChunk);
  }

  _sendWrite(stream, chunk, encoding) {
    if (this.uses('unacked-write')) {
      this.sio.emit(EV.WRITE, stream.id, chunk, encoding);
    } else {
      stream.unacked += 1;
      this.sio.emit(EV.WRITE, stream.id, chunk, encoding, (...args) => stream._writeAcked(args));
    }
  }

  /** Returns true when the end waits for an ack (unacked-write). */
  _sendEnd(stream) {
    if (this.uses('unacked-write')) {
      this.sio.emit(EV.END, stream.id, (...args) => stream._endAcked(args));
      return true;
    }
    this.sio.emit(EV.END, stream.id);
    return false;
  }

  _sendError(stream, message) {
    if (this.sio.connected) this.sio.emit(EV.ERROR, stream.id, message);
  }

  _connectionLost() {
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const s of streams) s._fail(new StreamError(CONNECTION_ABORTED), false);
    this.peerFeatures = new Set();
    this._helloSeen = false;
  }

  /** Streams registered on this socket (for tests: empty once every stream ended or failed). */
  get streamCount() {
    return this.streams.size;
  }
}

/** Wrap a socket.io-client socket (one StreamSocket per socket, as socket.io-stream's ss()). */
export function ss(socket, options) {
  if (!socket.__sioStream) socket.__sioStream = new StreamSocket(socket, options);
  return socket.__sioStream;
}

// -- helpers -----------------------------------------------------------------------------------

/**
 * A TransformStream that cuts and joins byte chunks into chunks of exactly `size` bytes (the last
 * one may be shorter). Chromium reads a File in pieces of 64 KiB to 2 MiB: written as they come,
 * each short piece would go out as a $stream-write of its own while credit is available, and
 * since credit counts chunks, not bytes, a window of short chunks carries fewer bytes.
 */
export function rechunk(size = DEFAULT_MAX_CHUNK) {
  const queue = new ByteQueue();
  return new TransformStream({
    transform(chunk, controller) {
      queue.push(toBytes(chunk));
      while (queue.size >= size) controller.enqueue(queue.take(size));
    },
    flush(controller) {
      if (queue.size) controller.enqueue(queue.take(queue.size));
    },
  });
}

/**
 * Write a Blob/File (or any ReadableStream of bytes) into `stream`, in chunks of the socket's
 * maxChunk (see rechunk); resolves with the byte count
 * once the peer accepted everything (its end ack, or every write acked). `onProgress(accepted,
 * total)` reports bytes the peer accepted, not bytes read from the file. `signal` (AbortSignal)
 * cancels: the stream fails with the abort reason and the peer is told.
 */
export async function sendBlob(stream, blob, { onProgress, signal } = {}) {
  const source = typeof blob.stream === 'function' ? blob.stream() : blob;
  const total = typeof blob.size === 'number' ? blob.size : undefined;
  if (onProgress) stream.onaccepted = (bytes) => onProgress(bytes, total);
  const size = stream.socket ? stream.socket.maxChunk : DEFAULT_MAX_CHUNK;
  // An abort fails the stream at once: pipeTo alone would first wait for the write in progress,
  // which waits for credit, and a peer that stopped reading never sends any.
  const abort = () => stream.destroy(signal.reason ?? new StreamError('upload aborted'));
  if (signal) signal.addEventListener('abort', abort, { once: true });
  try {
    await source.pipeThrough(rechunk(size)).pipeTo(stream.writable, { signal });
  } finally {
    if (signal) signal.removeEventListener('abort', abort);
  }
  if (onProgress) onProgress(stream.bytesAccepted, total);
  return stream.bytesAccepted;
}

/**
 * Read `stream` into a WritableStream (a file from the File System Access API, a service-worker
 * download, a Node file), counting bytes; resolves with the count. `onProgress(received, total)`.
 */
export async function receiveTo(stream, sink, { total, onProgress, signal } = {}) {
  let received = 0;
  const counter = new TransformStream({
    transform(chunk, controller) {
      received += chunk.byteLength;
      controller.enqueue(chunk);
      if (onProgress) onProgress(received, total);
    },
  });
  await stream.readable.pipeThrough(counter).pipeTo(sink, { signal });
  return received;
}

/** Blobs above this size are refused by saveStream's last-resort fallback unless allowBlob says so. */
export const BLOB_WARNING_SIZE = 512 * 1024 * 1024;

/**
 * Save a download to disk in the browser without holding it in memory where the browser allows:
 *   1. the File System Access API (window.showSaveFilePicker: Chromium, secure contexts) when
 *      `method` is 'auto' or 'picker' — needs a user gesture;
 *   2. a Blob and an <a download> click as the last fallback (the whole file in memory): a
 *      `onWarning(message)` call first when the size is above BLOB_WARNING_SIZE.
 * Resolves with {bytes, method}. The service-worker download of the sio_stream web page is in
 * its own module (web/download.js), because it needs a service worker served by the page's origin.
 */
export async function saveStream(stream, { name = 'download', total, onProgress, signal, method = 'auto', onWarning } = {}) {
  if ((method === 'auto' || method === 'picker') && typeof globalThis.showSaveFilePicker === 'function') {
    const handle = await globalThis.showSaveFilePicker({ suggestedName: name });
    const file = await handle.createWritable();
    const bytes = await receiveTo(stream, file, { total, onProgress, signal });
    return { bytes, method: 'picker' };
  }
  if (total !== undefined && total > BLOB_WARNING_SIZE && onWarning) {
    onWarning(`this browser can only save ${name} by holding all of it in memory first (${total} bytes)`);
  }
  const parts = [];
  const sink = new WritableStream({ write: (chunk) => void parts.push(chunk) });
  const bytes = await receiveTo(stream, sink, { total, onProgress, signal });
  const url = URL.createObjectURL(new Blob(parts));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return { bytes, method: 'blob' };
}
