// sio-stream client: socket.io-stream's wire protocol on a socket.io-client v4 socket, with
// WHATWG streams, and the extensions two sio_stream peers negotiate ($stream-hello).
//
// The wire contract is PROTOCOL.md of the sio_stream project; the Python implementation
// (sio_stream/core/_core.py) is the reference for the extensions. In short:
//   $stream        (event, ...args[, ack])  args with every stream replaced by {"$stream": id, options?}
//   $stream-read   (id, size[, count[, {consumed}]])  the reader grants credit: one chunk (count chunks with
//                  batch-read); with `consumed`, the chunks its application consumed so far
//   $stream-write  (id, chunk, encoding[, ack])  one chunk; acked unless unacked-write was negotiated
//   $stream-end    (id[, {size}][, ack])    the writer finished (acked when unacked-write was negotiated);
//                  `size`: a stream that took initial credit says the bytes it wrote (checked by the reader)
//   $stream-error  (id, message)            the sender failed the stream
//   $stream-hello  ({version, features})    sent by the client on connect; a sio_stream server answers
// With `resume` negotiated, a dropped transport suspends the streams instead of failing them, and
// the hello of the reconnected socket resumes them (see "resume" below and docs/protocol.md).
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
  // Each hello carries the most unused credit a writer accepts per stream ({credit: {bytes,
  // objects}}): our reader keeps its windows within the peer's (a Python writer fails a stream
  // granted beyond it), and says what our writer keeps (MAX_CREDIT chunks).
  'credit-limit',
  'error-reply',
  // A sio_stream reader's hello may offer credit for the first byte stream the peer sends it
  // ({initial: {credits, size}}): that stream's placeholder says how many credits it took
  // ({credit: k}) and its data follows the event at once, without waiting a round trip for a
  // $stream-read. Both ways: we take a server's offer (uploads), and our hello offers
  // `initialCredit` bytes (downloads on a long link; see DEFAULT_INITIAL_CREDIT).
  'initial-credit',
  // Once a stream was ended, our writes say the bytes left after them ({left: N}, a fourth
  // argument): a sio_stream reader sizes that stream's credit to it, and takes turns in its
  // connection window (many small uploads then all get their credit in one round trip).
  'final-size',
  'object-batch',
  // Our writer never sends a chunk larger than the `size` of the reader's last read, so a
  // sio_stream reader reserves exactly that much of its memory budget per credit (without it,
  // a chunk above the 64 KiB it first reserves must fit in its free room, or fails the stream).
  'read-size',
  // Streams survive a dropped transport (announced only with a resumeTimeoutMs above 0).
  'resume',
  'unacked-write',
  // Our writer counts progress from the reader's `consumed` reports (or from acks), never from
  // credit, so a sio_stream reader may grow its window for our uploads on a long link.
  'window-growth',
]);
/** The features an initial-credit offer needs on both sides (the writer's chunks stay within its size). */
const INITIAL_CREDIT_NEEDS = Object.freeze(['initial-credit', 'batch-read', 'read-size']);
const CONSUMED_KEY = 'consumed';
const RECEIVED_KEY = 'received';
/**
 * How long the streams of a dropped connection wait for socket.io-client to reconnect and resume
 * them, in milliseconds (the Python side's resume_timeout default, 30 s); 0 turns resume off.
 */
export const DEFAULT_RESUME_TIMEOUT_MS = 30_000;
/** Disconnect reasons of socket.io-client that are a failure of the transport, not a decision. */
const DROPPED_REASONS = new Set(['transport close', 'transport error', 'ping timeout']);
/** Streams that ended in good order kept for a resume (their end's answer may be lost): at most this many. */
const RECENTLY_CLOSED = 1024;

/** Largest chunk written in one $stream-write: under Socket.IO's default 1,000,000-byte message limit. */
export const DEFAULT_MAX_CHUNK = 256 * 1024;
/** Chunks a reader keeps in flight at first (8 x 256 KiB = 2 MiB per stream), as the Python reader. */
export const DEFAULT_WINDOW = 8;
/**
 * Most chunks a byte reader's window grows to (64 x 256 KiB = 16 MiB per stream; the Python
 * reader's max_window is 32 MiB, not yet measured in a browser) toward a sio_stream peer. The
 * rule is the Python reader's (sio_stream/core/_tuning.py): each time the application has
 * consumed a whole window, it looks at how long that took; under two round trips (the smallest
 * time seen from a grant of credit to the arrival of the chunk that used its last credit), data
 * came as fast as credit went out, so the round trip, not the reader, is the limit, and at the
 * application's next wait for data the window grows to twice the chunks a round trip carries at
 * the rate that window drained (the fastest over half of it or more), and at least doubles (measured through
 * benchmarks/delay_proxy.py at 20 ms: window 8 carries ~2 MiB per round trip, about half of what
 * Chromium moves on loopback; through benchmarks/link.py at 100 MB/s and 150 ms, a 256 MiB
 * download went from 36 MB/s with 32 chunks to 50 MB/s with 64). A reader that keeps data
 * waiting, or that is slower than the round trip, never grows: a browser reading slowly does not
 * reserve `maxWindow` chunks of credit.
 */
export const DEFAULT_MAX_WINDOW = 64;
/**
 * The most credit (chunks or objects) a stream holds or grants: what the protocol's writers
 * keep of unused credit (socket.io-stream and sio_stream alike); a Python writer fails a stream
 * whose reader grants more (credit-limit).
 */
export const MAX_CREDIT = 1024;
const DEFAULT_OBJECT_WINDOW = 128;
/**
 * Bytes of credit our hello offers, when asked, a sio_stream server for the first byte stream it
 * sends us (negotiated `initial-credit`; off by default, as on the Python side): 16 MiB covers a
 * 100 MB/s link at 150 ms, so a download's data follows its event instead of waiting a round trip for the first
 * $stream-read and then for the window to ramp. Offered in chunks of `maxChunk`, within the
 * largest window a stream may reach (`maxWindow` chunks) and MAX_CREDIT; 0 turns it off. It holds
 * nothing until a stream takes it, and then at most the chunks that stream was granted.
 */
export const DEFAULT_INITIAL_CREDIT = 16 * 1024 * 1024;
/** Bytes a reader consumes at most before it reports them to a writer that counts progress from them. */
const PROGRESS_STEP = 1024 * 1024;

/**
 * The smallest time (ms) from granting credit to the arrival of the chunk that used its last
 * credit: the round trip of an empty pipe, seen in the credit loop without an extra packet
 * (sio_stream/core/_tuning.py's RoundTrip). Samples include the writer's own delays, hence the
 * minimum.
 */
class RoundTrip {
  constructor() {
    this.grants = []; // [credits granted so far, when], oldest first
    this.head = 0; // grants before it were matched
    this.grantedTotal = 0;
    this.arrivedTotal = 0;
    this.ms = Infinity;
  }

  granted(count, now) {
    this.grantedTotal += count;
    this.grants.push([this.grantedTotal, now]);
  }

  /**
   * `count` credits granted at no time we know (initial credit, which the writer took before we
   * knew the stream): their chunks are counted, never sampled (a stamp at the decoding would make
   * the burst look like a round trip of a few ms).
   */
  unstamped(count) {
    this.grantedTotal += count;
  }

  arrived(count, now) {
    this.arrivedTotal += count;
    while (this.head < this.grants.length && this.grants[this.head][0] <= this.arrivedTotal) {
      this.ms = Math.min(this.ms, now - this.grants[this.head][1]);
      this.head += 1;
    }
    if (this.head > 64 && this.head * 2 > this.grants.length) {
      this.grants = this.grants.slice(this.head); // bounded by the credit outstanding
      this.head = 0;
    }
  }
}

/** The error every failed stream rejects with. `remote` is true when the peer reported it. */
export class StreamError extends Error {
  constructor(message, { remote = false } = {}) {
    super(message);
    this.name = 'StreamError';
    this.remote = remote;
  }
}

/**
 * What arrived is not what was sent: a stream that took initial credit ended at another byte
 * count than the final size its writer sent (its first writes overtook its event and were lost),
 * on either end (the reader that compared, and the writer told by the end's answer).
 */
export class IntegrityError extends StreamError {
  constructor(message, options) {
    super(message, options);
    this.name = 'IntegrityError';
  }
}

/**
 * The server refused to resume the session of a dropped connection (expired, unknown or in use):
 * the suspended streams fail with it, as a plain drop fails them ("Connection aborted"); `refused`
 * is the server's reason.
 */
export class ResumeRefusedError extends StreamError {
  constructor(refused) {
    super(CONNECTION_ABORTED);
    this.name = 'ResumeRefusedError';
    this.refused = refused;
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
  /** Put `u8` back in front of everything queued (a resumed stream's replay). */
  unshift(u8) {
    if (u8.byteLength) {
      this.chunks.unshift(u8);
      this.size += u8.byteLength;
    }
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
    this.sinceGrowth = 0; // chunks consumed since the last growth decision
    this.windowStarted = -1; // when (socket clock) the window being counted started to drain
    this.firstCounted = -1; // when the first chunk counted since then was consumed
    this.bestRate = 0; // chunks per ms since then, the fastest over half the window or more
    this.fastWindow = false; // the last whole window drained in under two round trips
    this.wantedWindow = 0; // what that window's drain says the window should grow to
    this.roundTrip = new RoundTrip();
    this.owed = 0; // consumed chunks not yet granted back (batch-read)
    this.consumedTotal = 0; // chunks the application consumed so far (told to the writer: `consumed`)
    this.readOpen = false; // the window was granted
    this.wantsRead = false;
    this.remoteEnded = false; // the peer's $stream-end arrived
    this.readEnded = false; // no more data and the inbox is empty, or the read side was ended locally
    this.bytesRead = 0;
    this.receivedUnits = 0; // bytes (objects in object mode) that arrived: told to the writer (resume)
    // writing
    this.pending = this.objectMode ? [] : new ByteQueue();
    this.credit = 0;
    this.creditTotal = 0;
    this.firstGrant = -1;
    this.unacked = 0;
    this.sentSizes = []; // sizes of chunks sent, oldest first, until accepted
    this.chunksSent = 0;
    this.chunksAccepted = 0;
    this.readSize = 0; // the `size` of the reader's last read (read-size: our chunks' limit)
    this.initialCredit = 0; // credits taken of the reader's initial offer (initial-credit)
    this.primed = 0; // as a reader: credits its writer took of our offer (initial-credit)
    this.bytesWritten = 0; // bytes the application wrote: a primed stream's end says it (its final size)
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
    // negotiated resume: what went on the wire and the reader did not acknowledge yet
    this.replay = []; // [units, chunk] oldest first
    this.sentUnits = 0; // bytes (objects) put on the wire, replays included once
    this.ackedUnits = 0; // of which the reader said it received this many
    this.retained = 0; // bytes kept in `replay`
    this.bytesResent = 0; // bytes sent again after resumes
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
      const window = this.objectMode ? this.socket.objectWindow : this.socket.window;
      this.readWindow = Math.min(window, this.socket._creditCap(this.objectMode));
      this._grant(this.readWindow - this.outstanding - this.inbox.length);
    }
  }

  /**
   * The application is about to wait for data: when credit is out, the inbox is empty and the
   * last whole window drained in under two round trips (see DEFAULT_MAX_WINDOW), the round trip
   * is the limit: double the window, up to the socket's maxWindow. Only toward a sio_stream peer
   * (batch-read): a JavaScript writer forgets surplus reads.
   */
  _maybeGrow() {
    const socket = this.socket;
    if (!this.readOpen || this.objectMode || this.readEnded || this.remoteEnded || this.error) return;
    if (!socket || !socket.uses('batch-read')) return;
    const cap = Math.min(socket.maxWindow, socket._creditCap(false));
    if (this.readWindow >= cap) return;
    if (this.inbox.length || this.outstanding === 0 || !this.fastWindow) return;
    const wanted = Math.max(2 * this.readWindow, this.wantedWindow);
    const more = Math.min(wanted, cap) - this.readWindow;
    this.readWindow += more;
    this.fastWindow = false;
    // The next decision counts a whole window of the new size from now.
    this.sinceGrowth = 0;
    this.windowStarted = socket.clock();
    this.firstCounted = -1;
    this.bestRate = 0;
    this._grant(more);
  }

  /** One chunk consumed: every whole window consumed, decide whether it drained fast (see DEFAULT_MAX_WINDOW). */
  _countForGrowth() {
    const now = this.socket.clock();
    if (this.windowStarted < 0) this.windowStarted = now;
    if (this.firstCounted < 0) this.firstCounted = now;
    this.sinceGrowth += 1;
    const gaps = this.sinceGrowth - 1;
    if (gaps && 2 * gaps >= this.readWindow - 1) {
      // Sized as the Python reader's: the fastest rate from the window's first chunk over at
      // least half of it (one late chunk must not hide the rate of the rest).
      const spent = now - this.firstCounted;
      this.bestRate = Math.max(this.bestRate, spent > 0 ? gaps / spent : Infinity);
    }
    if (this.sinceGrowth < this.readWindow) return;
    const rtt = this.roundTrip.ms;
    this.fastWindow = now - this.windowStarted < 2 * rtt;
    // Twice the chunks a round trip carries at that rate, when that is more than doubling.
    this.wantedWindow = this.fastWindow && Number.isFinite(rtt) ? Math.ceil(2 * this.bestRate * rtt) : 0;
    this.sinceGrowth = 0;
    this.windowStarted = now;
    this.firstCounted = -1;
    this.bestRate = 0;
  }

  /**
   * The writer took `credits` credits of our offer with this stream (initial-credit), as if we had
   * granted them in a read of `size` bytes: open the window at that many chunks and read at once,
   * whether or not the application has asked yet (as the Python reader, core/_initial.py). From
   * there it is an ordinary stream: each chunk consumed gives its credit back, in quarter windows.
   */
  _prime(credits) {
    this.readOpen = true;
    this.readWindow = Math.max(Math.min(this.socket.window, this.socket._creditCap(false)), credits);
    this.outstanding = credits;
    this.roundTrip.unstamped(credits);
    this.primed = credits;
  }

  /** The peer never saw this stream (its event goes again): the credit granted went nowhere. */
  _restartReading() {
    this.readOpen = false;
    this.outstanding = 0;
    this.owed = 0;
    this.sinceGrowth = 0;
    this.windowStarted = -1;
    this.firstCounted = -1;
    this.bestRate = 0;
    this.fastWindow = false;
    this.wantedWindow = 0;
    this.roundTrip = new RoundTrip();
  }

  _grant(count) {
    if (count <= 0 || !this.socket || this.error || this.readEnded) return;
    this.outstanding += count;
    this.roundTrip.granted(count, this.socket.clock());
    this.socket._sendRead(this, count);
  }

  _consumed(value) {
    if (!this.objectMode) this.bytesRead += value.byteLength;
    this.consumedTotal += 1;
    if (!this.readOpen || this.readEnded || this.remoteEnded) return;
    if (this.socket) this._countForGrowth();
    if (this.socket && this.socket.uses('batch-read')) {
      // As the Python reader: credit goes back every quarter window, so that one read event
      // replaces several while three quarters of the window stay in flight.
      this.owed += 1;
      if (this.owed * 4 >= this.readWindow || (this.socket.uses('consumed') && this._progressDue())) {
        const owed = this.owed;
        this.owed = 0;
        this._grant(owed);
      }
    } else {
      this._grant(1); // a JavaScript writer remembers only one pending read: one read per chunk
    }
  }

  /**
   * Report what was consumed with the credit given back before the quarter window is due (as the
   * Python reader, core/_progress.py): a writer's progress moves only with our `consumed` reports,
   * and a quarter of a primed 64-chunk window is 4 MiB. The step is 1 MiB or an eighth of the
   * window, whichever is less, never below two chunks (a window of 8 keeps its quarter batches).
   */
  _progressDue() {
    return this.owed >= Math.max(2, Math.min(Math.floor(PROGRESS_STEP / this.socket.maxChunk), Math.floor(this.readWindow / 8)));
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
    this.roundTrip.arrived(values.length, this.socket.clock());
    for (const v of values) {
      this.receivedUnits += this.objectMode ? 1 : v.byteLength;
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

  /**
   * The writer's end says it wrote `size` bytes (a stream that took initial credit: its final
   * size). Null when that is what arrived; else the stream fails and this is the end's answer:
   * {integrity} (IntegrityError: its first writes overtook the event and were lost, so it must not
   * end cleanly short; `notify`: also send $stream-error, for a writer whose end asks no answer),
   * or a message for a size that is not a byte count (a protocol error, as a write beyond credit).
   */
  _checkFinalSize(size, notify) {
    if (this.error || this.objectMode) return null;
    if (!Number.isSafeInteger(size) || size < 0) {
      return this._refuse(`bad final size ${String(JSON.stringify(size)).slice(0, 40)} on stream ${this.id}`);
    }
    if (size === this.receivedUnits) return null;
    const message = `stream ${this.id} ended at ${this.receivedUnits} bytes of its final size ${size}`;
    this._fail(new IntegrityError(message), notify);
    return { integrity: message };
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
          this.bytesWritten += bytes.byteLength;
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

  _receiveRead(count, report, size) {
    if (report && typeof report === 'object' && this.replay.length) this._acknowledge(report[RECEIVED_KEY]);
    if (count <= 0 || this.error || this.writeFinished) return;
    if (Number.isSafeInteger(size) && size > 0) this.readSize = size;
    if (this.firstGrant < 0) this.firstGrant = count;
    this.creditTotal += count;
    this.credit = Math.min(this.credit + count, MAX_CREDIT);
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
    if (!socket || !this.announced || this.error || !socket._canSend(this)) return;
    const retain = socket.resumable;
    const limit = this.readSize && socket.uses('read-size') ? Math.min(socket.maxChunk, this.readSize) : socket.maxChunk;
    while (this.credit > 0 && this.pendingSize > 0) {
      let chunk;
      let encoding;
      let size;
      if (this.objectMode) {
        chunk = this.pending.shift();
        encoding = 'utf8';
        size = 0;
      } else {
        chunk = ownBuffer(this.pending.take(limit));
        encoding = 'buffer';
        size = chunk.byteLength;
      }
      const left = this.writeEnding && !this.objectMode && socket.uses('final-size') ? this.pendingSize : null;
      this.credit -= 1;
      this.chunksSent += 1;
      this.bytesSent += size;
      this.sentSizes.push(size);
      if (retain) this._retain(chunk, size);
      socket._sendWrite(this, chunk, encoding, left);
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
    if (
      this.writeEnding && !this.endSent && this.pendingSize === 0 && this.announced && this.socket && !this.error &&
      this.socket._canSend(this)
    ) {
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
    this._dropReplay(); // the reader processed every write before the end
    if (args.length && args[0]) {
      const integrity = typeof args[0] === 'object' ? args[0].integrity : undefined;
      if (typeof integrity === 'string') {
        // The reader's check failed (a digest, or a primed stream's final size): nothing it kept holds.
        this._fail(new IntegrityError(integrity, { remote: true }), false);
        return;
      }
      if (this.chunksSent) {
        this._fail(new StreamError(String(args[0]), { remote: true }), false);
        return;
      }
      this.remoteEnded = true;
    }
    this._afterWrite();
  }

  // -- negotiated resume ---------------------------------------------------------------------
  // The writer keeps every chunk it sent until the reader's reads (their `received` count) or the
  // answer to its $stream-end cover it. A reader grants credit back as its application consumes,
  // so what is kept is bounded by the reader's window: chunks in flight plus chunks arrived and
  // not consumed yet.

  _retain(chunk, size) {
    const units = this.objectMode ? 1 : size;
    this.sentUnits += units;
    this.replay.push([units, chunk]);
    this.retained += size;
  }

  /** The reader received `received` units of this stream so far: forget what that covers. */
  _acknowledge(received) {
    if (!Number.isSafeInteger(received) || received <= this.ackedUnits || received > this.sentUnits) return;
    while (this.replay.length && this.ackedUnits < received) {
      const [units, item] = this.replay[0];
      if (this.ackedUnits + units <= received) {
        this.replay.shift();
        this.ackedUnits += units;
        if (!this.objectMode) this.retained -= item.byteLength;
        continue;
      }
      const cut = received - this.ackedUnits; // part of a byte chunk: keep its tail
      this.replay[0] = [units - cut, item.subarray(cut)];
      this.ackedUnits = received;
      this.retained -= cut;
    }
  }

  _dropReplay() {
    this.replay = [];
    this.ackedUnits = this.sentUnits;
    this.retained = 0;
  }

  /** What this stream reports in a resume hello: [received, outstanding credit, read size, ended]. */
  _resumeEntry() {
    return [this.receivedUnits, this.outstanding, this.readOpen ? this.socket.maxChunk : 0, this.remoteEnded ? 1 : 0];
  }

  /**
   * Apply the peer's entry for this stream after a resume: drop what it received, put the rest
   * of the replay back in front of what the application wrote since, take its outstanding
   * credit as ours (reads lost with the old connection are in it; writes lost are credit it
   * still counts), and send the end again unless the peer had it.
   */
  _rewind([received, outstanding, readSize, ended]) {
    if (received < this.ackedUnits || received > this.sentUnits) {
      const unit = this.objectMode ? 'objects' : 'bytes';
      this._fail(
        new StreamError(
          `cannot resume stream ${this.id}: the peer reports ${received} ${unit} received of ` +
            `${this.sentUnits} sent, ${this.ackedUnits} acknowledged`,
        ),
        true,
      );
      return;
    }
    this._acknowledge(received);
    // Progress counts whole chunks the reader consumed: chunks it never got are sent again,
    // cut afresh, so only those it received stay in the list.
    let at = this.objectMode ? this.chunksAccepted : this.bytesAccepted;
    let keep = 0;
    while (keep < this.sentSizes.length) {
      const units = this.objectMode ? 1 : this.sentSizes[keep];
      if (at + units > received) break;
      at += units;
      keep += 1;
    }
    this.sentSizes.length = keep;
    this.chunksSent = this.chunksAccepted + keep;
    for (let i = this.replay.length - 1; i >= 0; i--) {
      const [units, item] = this.replay[i];
      if (this.objectMode) this.pending.unshift(item);
      else {
        this.pending.unshift(item);
        this.bytesResent += units;
      }
    }
    this.replay = [];
    this.retained = 0;
    this.sentUnits = received;
    this.credit = Math.min(outstanding, MAX_CREDIT);
    this.unacked = 0;
    if (readSize) this.readSize = readSize; // the size of the credit it holds
    if (this.endSent && this.endAckPending) {
      this.endAckPending = false;
      if (ended && this.pendingSize === 0) {
        this._endAcked([]); // the reader had our end; its answer was lost
        return;
      }
      this.endSent = false; // sent again after the replay
    }
    this._flush();
  }

  // -- lifetime ------------------------------------------------------------------------------
  _fail(error, notify) {
    if (this.error) return;
    this.error = error;
    this.inbox = [];
    if (this.objectMode) this.pending = [];
    else this.pending.clear();
    this._dropReplay();
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
    if (this.socket && this.socket.streams.get(this.id) === this) {
      this.socket.streams.delete(this.id);
      this.socket._removed(this);
    }
    this._dropReplay();
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

// -- negotiated resume: application events and their answers exactly once --------------------
// Socket.IO delivers a connection's events in order, so both ends number a session's `$stream`
// events implicitly: the n-th one a side sends is the n-th the other receives. The sender keeps
// each event until it knows it arrived; at a resume each side reports how many it received
// (`events`) and which answers it still waits for (`awaiting`), and the other sends again the
// events beyond that count and the answers asked for (docs/protocol.md, `resume`). The bounds
// are the Python side's (sio_stream/core/_sent_events.py).

/** Events kept while nothing confirms they arrived (an ack, a read of a stream they carried). */
export const MAX_UNCONFIRMED_EVENTS = 1000;
/** Answers our handlers gave, kept until the peer's next `awaiting` says it has them. */
export const MAX_KEPT_ANSWERS = 1000;
/** What a caller gets when the peer no longer holds the answer to its event (as the Python side). */
export const ANSWER_LOST = 'the answer was lost with a dropped connection';
const RUNNING = Symbol('handler running');

function isCount(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

/** An ack callback that runs at most once (an answer may come twice: the ack and a reply). */
function once(callback) {
  let fn = callback;
  const wrapped = (...args) => {
    const f = fn;
    fn = null;
    if (f) f(...args);
  };
  wrapped.pending = () => fn !== null;
  wrapped.inner = callback;
  return wrapped;
}

/** Add the ids of every stream placeholder in (encoded) `value` to `out`. */
function placeholderIds(value, out) {
  if (Array.isArray(value)) for (const v of value) placeholderIds(v, out);
  else if (value && typeof value === 'object' && !isBinary(value)) {
    if (value[PLACEHOLDER_KEY]) out.add(String(value[PLACEHOLDER_KEY]));
    else for (const k of Object.keys(value)) placeholderIds(value[k], out);
  }
}

/** The `$stream` events this end sent on a session and does not know arrived. */
class SentEvents {
  constructor(cap = MAX_UNCONFIRMED_EVENTS) {
    this.cap = cap;
    this.sent = 0; // events sent on the session (the number of the last one)
    this.kept = []; // {number, args, onAck, ids}, oldest first
    this.carriers = new Map(); // stream id -> the newest kept event carrying it
    this.confirmed = 0; // every event up to this number arrived
    this.awaiting = new Map(); // number -> once(ack) of events whose answer has not come
  }
  /**
   * Event `args` (with `onAck`, or null, and the ids of the streams it carries) goes out now:
   * number it, keep it when `keep`, and return the ack callback to emit it with.
   */
  record(args, onAck, ids, keep) {
    this.sent += 1;
    const number = this.sent;
    if (!keep) return onAck;
    // One callback however many times the event goes out: an answer runs it at most once.
    const answer = onAck && !onAck.pending ? once(onAck) : onAck;
    this.kept.push({ number, args, onAck: answer, ids });
    for (const id of ids) this.carriers.set(id, number);
    if (this.kept.length > this.cap) this._forgetOldest();
    if (!answer) return null;
    this.awaiting.set(number, answer);
    // A peer that never answers must not make the record grow: the oldest answer can no
    // longer come again after a resume (its own ack still works).
    if (this.awaiting.size > this.cap) this.awaiting.delete(this.awaiting.keys().next().value);
    return (...reply) => {
      this.confirm(number);
      this.awaiting.delete(number);
      answer(...reply);
    };
  }
  /** The answer to event `number` came again after a resume. */
  replied(number, args) {
    const answer = this.awaiting.get(number);
    if (!answer) return;
    this.awaiting.delete(number);
    answer(...args);
  }
  awaited() {
    return [...this.awaiting.keys()].sort((a, b) => a - b);
  }
  confirm(number) {
    if (number <= this.confirmed) return;
    this.confirmed = number;
    while (this.kept.length && this.kept[0].number <= number) this._forgetOldest();
  }
  /** The peer read or wrote stream `id`: the event that carried it arrived. */
  streamUsed(id) {
    const number = this.carriers.get(id);
    if (number !== undefined) this.confirm(number);
  }
  _forgetOldest() {
    const { number, ids } = this.kept.shift();
    for (const id of ids) if (this.carriers.get(id) === number) this.carriers.delete(id);
  }
  /**
   * The peer received `received` of our events: the kept events to send again, in order (each
   * numbered again as it goes out), or null when they cannot all be (the count is not a count
   * or beyond what we sent, or events it needs were forgotten: numbering restarts from it).
   */
  unreceived(received) {
    if (!isCount(received) || received > this.sent) return null;
    const missing = this.sent - received;
    if (missing > this.kept.length) {
      this.kept = [];
      this.carriers.clear();
      this.sent = received;
      this.confirmed = Math.min(this.confirmed, received);
      // The events beyond the count are lost for good: their calls are not spared (they fail).
      for (const number of [...this.awaiting.keys()]) if (number > received) this.awaiting.delete(number);
      return null;
    }
    this.confirm(received);
    const again = this.kept;
    for (const { number } of again) this.awaiting.delete(number); // awaited again when sent again
    this.kept = [];
    this.carriers.clear();
    this.sent = received;
    return again;
  }
  /** The session cannot resume: keep nothing (the numbering goes on; acks still come). */
  forget() {
    this.kept = [];
    this.carriers.clear();
    this.awaiting.clear();
  }
  /** Callbacks still waiting for an answer (failed when the session cannot deliver them). */
  takeAwaiting() {
    const all = [...this.awaiting.values()];
    this.awaiting.clear();
    return all;
  }
}

/** The answers our handlers gave to the peer's events, kept for the peer's `awaiting`. */
class Answers {
  constructor(cap = MAX_KEPT_ANSWERS) {
    this.cap = cap;
    this.kept = new Map(); // event number -> encoded ack arguments (RUNNING while the handler runs)
    this.wanted = new Set(); // asked for after a resume while the handler still ran
  }
  /** The session cannot resume: keep nothing. */
  forget() {
    this.kept.clear();
    this.wanted.clear();
  }
  started(number) {
    this.kept.set(number, RUNNING);
    while (this.kept.size > this.cap) {
      const old = this.kept.keys().next().value;
      this.kept.delete(old);
      this.wanted.delete(old);
    }
  }
  /** The handler of event `number` answered `args`; true when the peer asked for it already. */
  answered(number, args) {
    if (this.kept.has(number)) this.kept.set(number, args);
    return this.wanted.delete(number);
  }
  /**
   * The peer waits for the answers to `numbers` (its resume hello; we received `received` of its
   * events): [number, args or null (forgotten: lost)] to send now. The others up to `received`
   * the peer has: forgotten.
   */
  asked(numbers, received) {
    const listed = Array.isArray(numbers) ? numbers.slice(0, this.cap) : [];
    const wanted = new Set(listed.filter((n) => Number.isSafeInteger(n) && n > 0 && n <= received));
    for (const number of [...this.kept.keys()]) if (number <= received && !wanted.has(number)) this.kept.delete(number);
    const now = [];
    for (const number of [...wanted].sort((a, b) => a - b)) {
      const answer = this.kept.get(number);
      if (answer === RUNNING) this.wanted.add(number);
      else now.push([number, answer ?? null]);
    }
    return now;
  }
}

function replyHello(number, args) {
  return { resume: args === null ? { reply: number, lost: true } : { reply: number, args } };
}

/**
 * The streams of one socket.io-client socket (the counterpart of socket.io-stream's ss(socket)).
 * Listens to the five wire events, announces the extensions on every (re)connect, and fails every
 * stream with "Connection aborted" when the connection drops, unless the session resumes.
 *
 * Resume (negotiated with a sio_stream server, `resumeTimeoutMs` above 0): when the transport
 * drops and socket.io-client reconnects by itself (a new sid), the hello of the new connection
 * carries the session's secret token and what this side received of every stream; the server
 * answers with its own, and every stream continues in both directions, each chunk delivered once
 * and in order. Meanwhile nothing is sent: writes wait for credit, reads read what arrived,
 * events emitted go out after the resume. A deliberate disconnect(), a server that refuses the
 * token (ResumeRefusedError) or no reconnection within `resumeTimeoutMs` fails the streams as a
 * plain drop does. Pending call()s fail at the drop (their acks belonged to the old connection).
 */
export class StreamSocket {
  constructor(
    socket,
    {
      window = DEFAULT_WINDOW,
      maxWindow,
      objectWindow = DEFAULT_OBJECT_WINDOW,
      maxChunk = DEFAULT_MAX_CHUNK,
      resumeTimeoutMs = DEFAULT_RESUME_TIMEOUT_MS,
      initialCredit = 0,
      clock = () => performance.now(),
    } = {},
  ) {
    if (!socket || typeof socket.emit !== 'function' || typeof socket.on !== 'function') {
      throw new TypeError('StreamSocket needs a socket.io-client socket');
    }
    for (const [name, value] of [['window', window], ['maxWindow', maxWindow], ['objectWindow', objectWindow]]) {
      if (value != null && !(Number.isSafeInteger(value) && value >= 1 && value <= MAX_CREDIT)) {
        throw new RangeError(`${name} must be a whole number of chunks from 1 to ${MAX_CREDIT}, not ${value}`);
      }
    }
    this.sio = socket;
    this.window = window;
    /** The most a byte reader's window grows to (never below `window`; `window` itself: fixed). */
    this.maxWindow = Math.max(window, maxWindow ?? DEFAULT_MAX_WINDOW);
    this.objectWindow = objectWindow;
    this.maxChunk = maxChunk;
    if (typeof clock !== 'function') throw new TypeError('clock must be a function returning milliseconds');
    /** Milliseconds, for the round trips that tune read windows (tests pass their own). */
    this.clock = clock;
    if (!(Number.isFinite(resumeTimeoutMs) && resumeTimeoutMs >= 0)) {
      throw new TypeError(`resumeTimeoutMs must be a number of milliseconds (0: off), not ${resumeTimeoutMs}`);
    }
    this.resumeTimeoutMs = resumeTimeoutMs;
    if (!(Number.isSafeInteger(initialCredit) && initialCredit >= 0)) {
      throw new RangeError(`initialCredit must be a whole number of bytes (0: off), not ${initialCredit}`);
    }
    /** Bytes of credit each hello offers the server for the first byte stream it sends us (0: none). */
    this.initialCredit = initialCredit;
    /** The features this socket announces (`resume` only with a resume timeout). */
    this.features = FEATURES.filter((f) => f !== 'resume' || resumeTimeoutMs > 0);
    this.streams = new Map();
    this.handlers = new Map();
    /** Features both sides announced (empty until a sio_stream server answers the hello). */
    this.peerFeatures = new Set();
    /** The peer writer's credit-limit ({bytes, objects}), once its hello announced one. */
    this.peerCredit = null;
    /** The peer reader's initial credit ({credits, size}) until our first byte stream takes it. */
    this.peerOffer = null;
    /** Our hello's offer ({credits, size}) until the peer's first byte stream takes it. */
    this.offer = null;
    /** Streams of the peer that took our offer (one per connection at most). */
    this.offersTaken = 0;
    this._helloWaiters = [];
    // negotiated resume
    this._token = null; // the session's secret (the server's answer to our hello)
    this._suspended = false; // the transport dropped; the session waits for the reconnection
    this._suspendedIds = new Set(); // streams registered at the drop (reported in the resume hello)
    this._resumeAsked = false;
    this._held = []; // events emitted while suspended, sent after the resume
    this._expiry = null;
    this._recentlyClosed = new Map(); // id -> resume entry of streams that left in good order
    this.resumes = 0;
    this._resentGone = 0; // bytes resent by streams no longer registered
    this.eventsResent = 0; // application events sent again after resumes
    this.repliesSent = 0; // answers sent again after resumes
    this._resetEvents();
    this._epoch = 0; // connections seen: an ack of an older one is not sent (its answer is kept)
    this._calls = new Set(); // pending call()s: {reject, onAck}
    socket.on(EV.STREAM, (...args) => this._onStream(args));
    socket.on(EV.READ, (id, size, count, report) => {
      const stream = this._lookup(id);
      if (!stream) return;
      this._sentEvents.streamUsed(id); // the event that carried it arrived
      stream._receiveRead(this._readCount(id, count), report, size);
    });
    socket.on(EV.WRITE, (id, chunk, encoding, ...rest) => {
      if (this._lookup(id)) this._sentEvents.streamUsed(id);
      // A sio_stream writer may add a fourth argument ({left: N}, final-size): the ack, when
      // the writer asked for one, is the last argument; this reader has no use for the rest.
      this._onWrite(id, chunk, encoding, rest[rest.length - 1]);
    });
    socket.on(EV.END, (id, ...rest) => {
      // A primed stream's end carries a value ({size}: its final size) before the ack, if any.
      const ack = typeof rest[rest.length - 1] === 'function' ? rest.pop() : undefined;
      this._onEnd(id, rest[0], ack);
    });
    socket.on(EV.ERROR, (id, message) => this._lookup(id)?._fail(new StreamError(String(message), { remote: true }), false));
    socket.on(EV.HELLO, (info) => this._onHello(info));
    socket.on('connect', () => this._connected());
    socket.on('disconnect', (reason) => this._disconnected(reason));
    // socket.io-client gave up reconnecting: nothing will resume.
    socket.io?.on?.('reconnect_failed', () => this._expire());
    // disconnect() while the transport is down emits no 'disconnect' (the socket was not
    // connected): the manager's close and an inactive socket say it, and the streams fail now.
    socket.io?.on?.('close', () => {
      if (this._suspended && this.sio.active === false) this._expire();
    });
    if (socket.connected) this._sendHello();
  }

  /** True once both peers announced `feature`. */
  uses(feature) {
    return this.peerFeatures.has(feature);
  }

  /** Both sides announced `resume` (and the batched reads and unacked writes it builds on). */
  get resumable() {
    return this.uses('resume') && this.uses('batch-read') && this.uses('unacked-write') && this.resumeTimeoutMs > 0;
  }

  /**
   * Keep our events and answers for a replay: the session can resume, or it may (resume is on
   * here and the server's hello has not come yet). We emit without waiting a round trip for the
   * server's answer, so our first events would otherwise lose their answers to the first drop
   * (as the Python side, issue 21). A hello without `resume` forgets them; toward a server that
   * never answers (npm socket.io-stream) MAX_UNCONFIRMED_EVENTS bounds them.
   */
  get _keepsEvents() {
    return this.resumable || (!this._helloSeen && this.resumeTimeoutMs > 0);
  }

  /** Whether the transport dropped and the session waits for socket.io-client to reconnect. */
  get suspended() {
    return this._suspended;
  }

  /**
   * Counters: `streams` registered, `suspended` (waiting for a reconnection), `resumes` (sessions
   * resumed so far), `retained` (bytes sent and kept until the server acknowledges them, for a
   * replay), `resent` (bytes sent again after resumes), `eventsResent` (application events sent
   * again after resumes: the server had not received them), `repliesSent` (answers of our
   * handlers sent again after resumes), `unconfirmedEvents` (events kept until they are known to
   * have arrived), `offersTaken` (streams of the server that took our initial credit).
   */
  statistics() {
    let retained = 0;
    let resent = 0;
    for (const s of this.streams.values()) {
      retained += s.retained;
      resent += s.bytesResent;
    }
    return {
      streams: this.streams.size,
      suspended: this._suspended,
      resumes: this.resumes,
      retained,
      resent: resent + this._resentGone,
      eventsResent: this.eventsResent,
      repliesSent: this.repliesSent,
      unconfirmedEvents: this._sentEvents.kept.length,
      offersTaken: this.offersTaken,
    };
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
    this._emitEvent(event, args, ack);
    return this;
  }

  /** emit(), returning the callback its ack goes through (null without an ack). */
  _emitEvent(event, args, ack) {
    const attached = [];
    const encoded = this._encode(args, attached);
    const onAck = ack ? (...reply) => this._onAck(ack, reply) : null;
    const ids = attached.map((s) => s.id);
    if (this._suspended) this._held.push({ args: [EV.STREAM, event, ...encoded], onAck, ids });
    else this._sendEvent([EV.STREAM, event, ...encoded], onAck, ids);
    for (const s of attached) this._announce(s);
    return onAck;
  }

  /** Number application event `args`, keep it until it is known to have arrived (resume), send it. */
  _sendEvent(args, onAck, ids) {
    const callback = this._sentEvents.record(args, onAck, ids, this._keepsEvents);
    if (callback) this.sio.emit(...args, callback);
    else this.sio.emit(...args);
  }

  /**
   * Emit `event` and resolve with the ack's arguments as an array (streams decoded). Rejects with
   * a StreamError when a sio_stream server reports that its handler failed (error-reply), or when
   * the connection drops first. With `resume` negotiated a drop does not fail it: the answer
   * comes after the resume; it rejects with "Connection aborted" when the session is lost
   * (a refusal: ResumeRefusedError), and with the error-reply StreamError ANSWER_LOST when the
   * server no longer holds the answer.
   */
  call(event, ...args) {
    return new Promise((resolve, reject) => {
      if (!this.sio.connected && !this._suspended) {
        reject(new StreamError(CONNECTION_ABORTED));
        return;
      }
      const pending = { reject, onAck: null };
      this._calls.add(pending);
      pending.onAck = this._emitEvent(event, args, (...reply) => {
        this._calls.delete(pending);
        if (reply.length === 1 && reply[0] instanceof StreamError) reject(reply[0]);
        else resolve(reply);
      });
    });
  }

  /** Reject the pending call()s except those whose ack callback is in `spare`. */
  _failCalls(error, spare = new Set()) {
    for (const pending of [...this._calls]) {
      if (spare.has(pending.onAck)) continue;
      this._calls.delete(pending);
      pending.reject(error);
    }
  }

  // -- placeholders ----------------------------------------------------------------------------
  _encode(value, attached) {
    if (value instanceof IOStream) {
      if (value.socket) throw new StreamError(`stream ${value.id} was already sent`);
      if (value.error) throw new StreamError(`stream ${value.id} was destroyed: ${value.error.message}`);
      value.socket = this;
      this.streams.set(value.id, value);
      attached.push(value);
      const placeholder = value.toJSON();
      const credit = this._takeOffer(value);
      if (credit) placeholder.credit = credit;
      return placeholder;
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
        const stream = this._received(value[PLACEHOLDER_KEY], value.options, value.credit);
        found.push(stream);
        return stream;
      }
      const out = {};
      for (const k of Object.keys(value)) out[k] = this._decode(value[k], found);
      return out;
    }
    return value;
  }

  /** A stream the peer sent us; `credit`: the credits its writer took of our offer (initial-credit). */
  _received(id, options, credit) {
    const stream = new IOStream(options && typeof options === 'object' ? options : {}, String(id));
    if (this.streams.has(stream.id)) {
      stream._fail(new StreamError(`Decoded stream already exists: ${stream.id}`), false);
      this._emit(EV.ERROR, stream.id, stream.error.message);
      return stream;
    }
    stream.socket = this;
    this.streams.set(stream.id, stream);
    this._announce(stream);
    if (credit !== undefined && credit !== null) this._prime(stream, credit);
    return stream;
  }

  /**
   * The peer's writer says `stream` took `credit` credits of our offer: prime it (see
   * IOStream._prime), or fail it when that credit was not offered (no offer, one already taken,
   * an object-mode stream, not a whole number from 1 to what we offered): the peer gets
   * $stream-error for it, the connection stays up, and the offer stays for another stream.
   */
  _prime(stream, credit) {
    const offer = this.offer;
    let problem = null;
    if (!offer || !this.uses('initial-credit')) problem = 'initial credit that was not offered';
    else if (stream.objectMode) problem = 'initial credit on an object-mode stream';
    else if (!Number.isSafeInteger(credit) || credit < 1 || credit > offer.credits) {
      problem = `bad initial credit ${String(JSON.stringify(credit)).slice(0, 40)} (offered ${offer.credits})`;
    }
    if (problem) {
      stream._refuse(`${problem} on stream ${stream.id}`);
      return;
    }
    this.offer = null;
    this.offersTaken += 1;
    stream._prime(credit);
  }

  /**
   * What our hello offers: `initialCredit` bytes in credits of `maxChunk` (the size our reads ask
   * for), within the largest window a stream reaches and MAX_CREDIT; null for none.
   */
  _makeOffer() {
    const largest = Math.max(this.window, this.maxWindow) * this.maxChunk;
    const credits = Math.min(Math.floor(Math.min(this.initialCredit, largest) / this.maxChunk), MAX_CREDIT);
    return credits > 0 ? { credits, size: this.maxChunk } : null;
  }

  _announce(stream) {
    stream.announced = true;
    if (stream.wantsRead) stream._startReading();
    stream._flush();
    if (stream.error && !stream.error.remote) this._sendError(stream, stream.error.message);
  }

  // -- the peer's events -----------------------------------------------------------------------
  _lookup(id) {
    // While suspended, nothing that arrives belongs to the session (it is replayed after the resume).
    return typeof id === 'string' && !this._suspended ? this.streams.get(id) : undefined;
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

  _onEnd(id, value, ack) {
    const stream = this._lookup(id);
    let answer = null;
    if (stream && this.uses('initial-credit') && value && typeof value === 'object' && 'size' in value) {
      answer = stream._checkFinalSize(value.size, !this.uses('unacked-write'));
    }
    if (stream && !answer) stream._receiveEnd();
    if (typeof ack === 'function') {
      if (!stream) ack(`invalid stream id: ${id}`);
      else if (answer) ack(answer);
      else ack();
    }
  }

  _onHello(info) {
    const resume = info && typeof info === 'object' ? info.resume : undefined;
    if (resume && typeof resume === 'object' && 'reply' in resume) {
      if (!this._suspended) this._receiveReply(resume);
      return;
    }
    if (this._suspended) {
      if (this._resumeAsked) this._resumeAnswered(info, resume);
      return;
    }
    this._setFeatures(info);
    this._token = resume && typeof resume.token === 'string' && this.resumable ? resume.token : null;
  }

  _setFeatures(info) {
    const theirs = info && Array.isArray(info.features) ? info.features : [];
    this.peerFeatures = new Set(theirs.filter((f) => this.features.includes(f)));
    // The peer writer's bound (credit-limit); a malformed one is ignored, as the Python side does.
    const credit = info && info.credit;
    const whole = (n) => Number.isSafeInteger(n) && n >= 1;
    this.peerCredit =
      this.peerFeatures.has('credit-limit') && credit && whole(credit.bytes) && whole(credit.objects)
        ? { bytes: credit.bytes, objects: credit.objects }
        : null;
    // The peer reader's initial credit (initial-credit), taken by our first byte stream; ours is
    // withdrawn from a peer that cannot take it.
    const initial = info && info.initial;
    const offers = INITIAL_CREDIT_NEEDS.every((f) => this.peerFeatures.has(f));
    if (!offers) this.offer = null;
    this.peerOffer =
      offers &&
      initial &&
      whole(initial.credits) &&
      whole(initial.size)
        ? { credits: initial.credits, size: initial.size }
        : null;
    this._helloSeen = true;
    if (!this.resumable) {
      this._sentEvents.forget(); // kept in case the session could resume (see _keepsEvents)
      this._answers.forget();
    }
    for (const wake of this._helloWaiters.splice(0)) wake();
  }

  async _onStream(args) {
    // While suspended an event came on the dead transport: the peer sends it again after the resume.
    if (this._suspended) return;
    const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
    const number = ++this._eventsReceived;
    const keep = ack !== null && this._keepsEvents;
    if (keep) this._answers.started(number);
    const epoch = this._epoch;
    // The answer is kept for the peer's `awaiting`; an ack of a connection that dropped since is
    // not sent (the peer gets the answer as a reply after the resume, or it is lost with the session).
    const answer = (encoded) => {
      if (keep && this._answers.answered(number, encoded)) {
        this.repliesSent += 1;
        this._emit(EV.HELLO, replyHello(number, encoded));
        return;
      }
      if (ack && epoch === this._epoch) ack(...encoded);
    };
    const [event, ...rest] = args;
    const found = [];
    const decoded = this._decode(rest, found);
    const handler = this.handlers.get(event);
    const refuse = (message) => {
      for (const s of found) s.destroy(message);
      if (ack) answer(this.uses('error-reply') ? [{ [ERROR_REPLY_KEY]: message }] : []);
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
    answer(this._encode(reply, attached));
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
    if (this.uses('claim')) for (const s of found) this._emit(EV.READ, s.id, this.maxChunk, 0);
    callback(...decoded);
  }

  // -- sending -----------------------------------------------------------------------------------
  _sendHello() {
    this.peerFeatures = new Set();
    this.peerCredit = null;
    this.peerOffer = null;
    this._helloSeen = false;
    this._token = null;
    this._recentlyClosed.clear();
    // A server that announces no initial-credit ignores the offer (npm servers ignore the whole
    // hello) and is sent no credit to take: _setFeatures withdraws it then.
    this.offer = this._makeOffer();
    const hello = { version: PROTOCOL_VERSION, features: [...this.features], credit: this._creditLimit() };
    if (this.offer) hello.initial = { ...this.offer };
    this.sio.emit(EV.HELLO, hello);
  }

  /**
   * Our byte stream `stream` is being sent: the credits it takes of the peer reader's offer
   * (initial-credit; taken once per connection), held as if the reader had sent
   * $stream-read(id, size, credits). 0: none.
   */
  _takeOffer(stream) {
    const offer = this.peerOffer;
    if (!offer || stream.objectMode) return 0;
    this.peerOffer = null;
    const credits = Math.min(offer.credits, MAX_CREDIT);
    stream.credit = credits;
    stream.creditTotal = credits;
    stream.firstGrant = credits;
    stream.readSize = offer.size;
    stream.initialCredit = credits;
    return credits;
  }

  /** Our writer's bound (credit-limit): it keeps MAX_CREDIT credits, each a chunk of at most maxChunk. */
  _creditLimit() {
    return { bytes: MAX_CREDIT * this.maxChunk, objects: MAX_CREDIT };
  }

  /**
   * Most credit one of our streams may hold outstanding as a reader: within the peer writer's
   * announced credit-limit (its bytes counted in reads of our maxChunk, the size our reads ask
   * for), and MAX_CREDIT. Toward a peer that did not announce it, MAX_CREDIT.
   */
  _creditCap(objectMode) {
    const limit = this.peerCredit;
    if (!limit) return MAX_CREDIT;
    const credits = objectMode ? limit.objects : Math.floor(limit.bytes / this.maxChunk);
    return Math.max(1, Math.min(MAX_CREDIT, credits));
  }

  /** Everything but a resume's own handshake goes through here: held while suspended. */
  _emit(...args) {
    if (this._suspended) this._held.push(args);
    else this.sio.emit(...args);
  }

  /** Nothing of a suspended stream is sent until the resume rewinds it. */
  _canSend(stream) {
    return !this._suspended || !this._suspendedIds.has(stream.id);
  }

  _sendRead(stream, count) {
    if (!this._canSend(stream)) return; // the credit is reported in the resume hello
    if (this.uses('batch-read')) {
      const report = {};
      if (this.uses('consumed')) report[CONSUMED_KEY] = stream.consumedTotal;
      if (this.resumable) report[RECEIVED_KEY] = stream.receivedUnits;
      if (Object.keys(report).length) this._emit(EV.READ, stream.id, this.maxChunk, count, report);
      else this._emit(EV.READ, stream.id, this.maxChunk, count);
    } else for (let i = 0; i < count; i++) this._emit(EV.READ, stream.id, this.maxChunk);
  }

  /** `left`: the bytes left after this chunk of an ended stream (final-size), or null. */
  _sendWrite(stream, chunk, encoding, left = null) {
    const hint = left === null ? [] : [{ left }];
    if (this.uses('unacked-write')) {
      this._emit(EV.WRITE, stream.id, chunk, encoding, ...hint);
    } else {
      stream.unacked += 1;
      this._emit(EV.WRITE, stream.id, chunk, encoding, ...hint, (...args) => stream._writeAcked(args));
    }
  }

  /** Returns true when the end waits for an ack (unacked-write). */
  _sendEnd(stream) {
    // A stream that took initial credit says its final size: a reader that received another
    // count (its first writes overtook the event and were lost) fails it instead of ending short.
    const size = stream.initialCredit && !stream.objectMode ? [{ size: stream.bytesWritten }] : [];
    if (this.uses('unacked-write')) {
      this._emit(EV.END, stream.id, ...size, (...args) => stream._endAcked(args));
      return true;
    }
    this._emit(EV.END, stream.id, ...size);
    return false;
  }

  _sendError(stream, message) {
    if (this._suspended || this.sio.connected) this._emit(EV.ERROR, stream.id, message);
  }

  _connectionLost(error = new StreamError(CONNECTION_ABORTED)) {
    this._endSuspension();
    this._held = [];
    this._resetEvents();
    this._failCalls(error);
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const s of streams) s._fail(error, false);
    this.peerFeatures = new Set();
    this.peerCredit = null;
    this.peerOffer = null;
    this.offer = null;
    this._helloSeen = false;
    this._token = null;
    this._recentlyClosed.clear();
  }

  // -- negotiated resume -------------------------------------------------------------------------
  _connected() {
    if (this._suspended) this._sendResumeHello();
    else this._sendHello();
  }

  _disconnected(reason) {
    this._epoch += 1;
    if (this._suspended) {
      this._resumeAsked = false; // dropped again before the answer: ask again; the clock runs on
      return;
    }
    if (
      this._token !== null && this.resumable && DROPPED_REASONS.has(reason) && this.sio.active !== false &&
      (typeof this.sio.io?.reconnection !== 'function' || this.sio.io.reconnection())
    ) {
      this._suspend();
      return;
    }
    this._connectionLost();
  }

  _suspend() {
    this._suspended = true;
    this._resumeAsked = false;
    this._suspendedIds = new Set(this.streams.keys());
    this._expiry = setTimeout(() => this._expire(), this.resumeTimeoutMs);
    this._expiry.unref?.(); // a Node program may exit meanwhile
  }

  /** No reconnection within resumeTimeoutMs (or socket.io-client gave up): fail as a plain drop. */
  _expire() {
    if (this._suspended) this._connectionLost();
  }

  _endSuspension() {
    clearTimeout(this._expiry);
    this._expiry = null;
    this._suspended = false;
    this._resumeAsked = false;
    this._suspendedIds = new Set();
  }

  /** `stream` left the registry: keep its counters, and its resume entry if it ended in good order. */
  _removed(stream) {
    this._resentGone += stream.bytesResent;
    if (stream.error || !this.resumable) return;
    this._recentlyClosed.delete(stream.id);
    this._recentlyClosed.set(stream.id, [stream.receivedUnits, 0, 0, stream.remoteEnded ? 1 : 0]);
    if (this._recentlyClosed.size > RECENTLY_CLOSED) this._recentlyClosed.delete(this._recentlyClosed.keys().next().value);
  }

  /** The reconnected socket's first event: the token and what we have of every stream. */
  _sendResumeHello() {
    const streams = Object.fromEntries(this._recentlyClosed);
    for (const id of this._suspendedIds) {
      const stream = this.streams.get(id);
      if (stream && !stream.error) streams[id] = stream._resumeEntry();
    }
    this._resumeAsked = true;
    this.sio.emit(EV.HELLO, {
      version: PROTOCOL_VERSION,
      features: [...this.features],
      credit: this._creditLimit(),
      resume: { token: this._token, streams, events: this._eventsReceived, awaiting: this._sentEvents.awaited() },
    });
  }

  _resumeAnswered(info, answer) {
    const accepted = answer && typeof answer === 'object' && 'streams' in answer && !('refused' in answer);
    if (accepted) {
      // The session goes on: its offers are the first hellos' (taken or not), as on the Python
      // side; an untaken one repeated in the answer must not be taken a second time.
      const [offer, ours] = [this.peerOffer, this.offer];
      this._setFeatures(info);
      this.peerOffer = offer;
      this.offer = ours;
      if (this.resumable) {
        if (typeof answer.token === 'string') this._token = answer.token;
        // The server forgets the token we resumed with once we confirm we hold the new one.
        this.sio.emit(EV.HELLO, { resume: { confirm: true } });
        this._applyResume(answer);
        return;
      }
    }
    const refused = answer && typeof answer === 'object' && answer.refused ? String(answer.refused) : 'the server does not resume sessions';
    const ids = this._suspendedIds;
    const held = this._held;
    this._held = [];
    this._endSuspension();
    this._recentlyClosed.clear();
    // The old session's streams and calls fail as a plain drop fails them.
    const error = new ResumeRefusedError(refused);
    for (const id of ids) this.streams.get(id)?._fail(error, false);
    this._resetEvents();
    this._failCalls(error, new Set(held.map((h) => h.onAck).filter(Boolean)));
    // A fresh session on this connection: events emitted meanwhile (with their new streams) go on it.
    // Our resume hello offered no credit, so the fresh session has none to take.
    this._setFeatures(info);
    this.offer = null;
    this._token = answer && typeof answer.token === 'string' && this.resumable ? answer.token : null;
    this._sendHeld(held);
  }

  /** Send what was emitted while suspended, in order (application events numbered as they go). */
  _sendHeld(held) {
    for (const item of held) {
      if (Array.isArray(item)) this.sio.emit(...item);
      else this._sendEvent(item.args, item.onAck, item.ids);
    }
  }

  /** A fresh session: no event sent or received yet. */
  _resetEvents() {
    this._sentEvents = new SentEvents();
    this._answers = new Answers();
    this._eventsReceived = 0;
  }

  /** A reply hello: the answer to our event `reply`, sent again after a resume (or lost). */
  _receiveReply(resume) {
    const lost = resume.lost === true || !Array.isArray(resume.args);
    const args = lost ? [{ [ERROR_REPLY_KEY]: ANSWER_LOST }] : resume.args;
    if (Number.isSafeInteger(resume.reply)) this._sentEvents.replied(resume.reply, args);
  }

  _applyResume(answer) {
    const entries = answer.streams;
    const table = entries && typeof entries === 'object' && !Array.isArray(entries) ? entries : {};
    const ids = this._suspendedIds;
    const held = this._held;
    this._held = [];
    // Our events the server did not receive go again, ahead of everything (their streams start
    // afresh: it never saw them); the answers it waits for go first, as they may announce streams.
    const again = 'events' in answer ? this._sentEvents.unreceived(answer.events) ?? [] : [];
    const replies = 'awaiting' in answer ? this._answers.asked(answer.awaiting, this._eventsReceived) : [];
    // A server without the keys (the first version of resume) sends no answers again.
    if (!('awaiting' in answer)) this._sentEvents.takeAwaiting();
    const fresh = new Set();
    for (const event of again) for (const id of event.ids) fresh.add(id);
    for (const [, args] of replies) placeholderIds(args, fresh);
    this._endSuspension();
    this.resumes += 1;
    for (const [number, args] of replies) this.sio.emit(EV.HELLO, replyHello(number, args));
    for (const event of again) this._sendEvent(event.args, event.onAck, event.ids);
    this.repliesSent += replies.length;
    this.eventsResent += again.length;
    for (const id of ids) {
      const stream = this.streams.get(id);
      if (!stream || stream.error) continue;
      let entry = Object.prototype.hasOwnProperty.call(table, id) ? table[id] : undefined;
      if (entry === undefined && fresh.has(id)) {
        // Its event goes again with the credit it took of the server's offer: it holds it again.
        entry = [0, stream.initialCredit, stream.initialCredit ? stream.readSize : 0, 0];
        stream._restartReading();
      }
      const valid = Array.isArray(entry) && entry.length === 4 && entry.every((v) => Number.isSafeInteger(v) && v >= 0);
      // A stream the server does not list never arrived there, or failed there.
      if (!valid) stream._fail(new StreamError(CONNECTION_ABORTED), false);
      else {
        stream._rewind(entry);
        if (fresh.has(id) && stream.wantsRead) stream._startReading();
      }
    }
    this._sendHeld(held);
    // A call whose answer cannot come (a server without `awaiting`, or an event lost beyond the
    // bounds) fails as a plain drop fails it.
    const spare = new Set([...this._sentEvents.awaiting.values()].map((a) => a.inner));
    for (const item of held) if (!Array.isArray(item) && item.onAck) spare.add(item.onAck);
    this._failCalls(new StreamError(CONNECTION_ABORTED), spare);
    for (const stream of this.streams.values()) stream._signal.wake();
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
