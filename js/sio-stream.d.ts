// Type declarations of sio-stream.js (the sio_stream JavaScript client).

/** The minimal socket.io-client v4 Socket surface the client uses. */
export interface SocketLike {
  connected: boolean;
  emit(event: string, ...args: any[]): any;
  on(event: string, listener: (...args: any[]) => void): any;
  once(event: string, listener: (...args: any[]) => void): any;
  off(event: string, listener?: (...args: any[]) => void): any;
  /** socket.io-client: whether the socket will reconnect by itself (resume needs it). */
  active?: boolean;
}

export interface StreamOptions {
  objectMode?: boolean;
  allowHalfOpen?: boolean;
  highWaterMark?: number;
  encoding?: string;
  decodeStrings?: boolean;
  [key: string]: unknown;
}

export declare const CONNECTION_ABORTED: 'Connection aborted';
export declare const PROTOCOL_VERSION: 1;
export declare const FEATURES: readonly string[];
export declare const DEFAULT_MAX_CHUNK: number;
export declare const DEFAULT_WINDOW: number;
export declare const DEFAULT_MAX_WINDOW: number;
export declare const BLOB_WARNING_SIZE: number;
/** How long a dropped connection's streams wait for the reconnection (30,000 ms). */
export declare const DEFAULT_RESUME_TIMEOUT_MS: number;
/** Bytes of credit each hello offers a sio_stream server for its first byte stream (16 MiB). */
export declare const DEFAULT_INITIAL_CREDIT: number;

/** Every failure of a stream or a call. `remote`: the peer reported it. */
export declare class StreamError extends Error {
  constructor(message: string, options?: { remote?: boolean });
  readonly remote: boolean;
}

/**
 * What arrived is not what was sent: a stream that took initial credit ended at another byte
 * count than the final size its writer sent. Raised by the reader that compared, and by the
 * writer told through its end's answer (`remote` then true).
 */
export declare class IntegrityError extends StreamError {}

/**
 * The server refused to resume a dropped connection's session (it expired, or is unknown): the
 * suspended streams fail with it. Its message is "Connection aborted", as on a plain drop;
 * `refused` is the server's reason.
 */
export declare class ResumeRefusedError extends StreamError {
  readonly refused: string;
}

/** One sub-stream: a readable and a writable side on one id, with credit-window backpressure. */
export declare class IOStream {
  constructor(options?: StreamOptions, id?: string);
  readonly id: string;
  readonly options: StreamOptions;
  readonly objectMode: boolean;
  /** Uint8Array chunks (any JSON value in object mode); each chunk read grants the peer credit. */
  readonly readable: ReadableStream<any>;
  /** Accepts Uint8Array, ArrayBuffer, views and strings (any JSON value in object mode). */
  readonly writable: WritableStream<any>;
  /** The stream's failure, once it failed. */
  readonly error: StreamError | null;
  readonly bytesRead: number;
  readonly bytesSent: number;
  /**
   * Bytes the peer accepted: what its application consumed (its `consumed` reports, sio_stream
   * peers), else acked (plain protocol).
   */
  readonly bytesAccepted: number;
  /** Credits this stream took of the server's initial offer, as a writer (0: none). */
  readonly initialCredit: number;
  /** Credits the server's writer took of our initial offer with this stream, as a reader (0: none). */
  readonly primed: number;
  /** Called whenever bytesAccepted grows. */
  onaccepted: ((bytesAccepted: number) => void) | null;
  /** Resolves once the stream left its socket's registry (finished or failed); never rejects. */
  readonly done: Promise<void>;
  /** Fail both sides and tell the peer ($stream-error). */
  destroy(reason?: unknown): void;
}

export declare function createStream(options?: StreamOptions): IOStream;

export interface StreamSocketOptions {
  /** Chunks a byte reader keeps in flight at first (default 8). */
  window?: number;
  /**
   * Most chunks a byte reader's window grows to toward a sio_stream server (default 64, 16 MiB): it
   * doubles when the application waits for data and its last whole window drained in under two
   * round trips (the round trip, not the reader, is the limit). Set it to `window` for a fixed
   * window.
   */
  maxWindow?: number;
  /** Milliseconds, for the round trips that tune read windows (default `performance.now`; tests pass their own). */
  clock?: () => number;
  /** Objects an object-mode reader keeps in flight (default 128). */
  objectWindow?: number;
  /** Largest chunk written (default 256 KiB; keep it under the server's max_http_buffer_size). */
  maxChunk?: number;
  /**
   * How long the streams of a dropped connection wait for socket.io-client to reconnect and
   * resume them, toward a sio_stream server that resumes (default 30,000 ms; 0: a drop fails
   * them at once, and `resume` is not announced).
   */
  resumeTimeoutMs?: number;
  /**
   * Bytes of credit each hello offers a sio_stream server for the first byte stream it sends this
   * client (negotiated `initial-credit`; default 0: off; DEFAULT_INITIAL_CREDIT, 16 MiB, for a long link): a download's data then follows
   * its event without waiting a round trip for the first read, nor for the window to ramp. In
   * chunks of `maxChunk`, at most `maxWindow` of them; the stream reads them whether or not the
   * application has asked yet. Servers that did not announce the feature are offered nothing.
   */
  initialCredit?: number;
}

export interface StreamSocketStatistics {
  /** Streams registered. */
  streams: number;
  /** The transport dropped and the session waits for the reconnection. */
  suspended: boolean;
  /** Sessions resumed after a dropped connection. */
  resumes: number;
  /** Bytes sent and kept until the server acknowledges them (for a replay). */
  retained: number;
  /** Bytes sent again after resumes. */
  resent: number;
  /** Application events sent again after resumes (the server had not received them). */
  eventsResent: number;
  /** Answers of our handlers sent again after resumes (the server waited for them). */
  repliesSent: number;
  /** Events kept until they are known to have arrived (at most MAX_UNCONFIRMED_EVENTS). */
  unconfirmedEvents: number;
  /** Streams of the server that took our initial credit (at most one per connection). */
  offersTaken: number;
}

/** Application events kept while nothing confirms they arrived (negotiated resume). */
export declare const MAX_UNCONFIRMED_EVENTS: number;
/** Answers of our handlers kept for the server's next resume. */
export declare const MAX_KEPT_ANSWERS: number;
/** The message of the error a call() rejects with when the server no longer holds its answer. */
export declare const ANSWER_LOST: string;

export declare class StreamSocket {
  constructor(socket: SocketLike, options?: StreamSocketOptions);
  readonly sio: SocketLike;
  readonly peerFeatures: ReadonlySet<string>;
  readonly streamCount: number;
  /** Both sides announced `resume`: a dropped transport suspends the streams instead of failing them. */
  readonly resumable: boolean;
  /** The transport dropped and the session waits for socket.io-client to reconnect. */
  readonly suspended: boolean;
  /** Sessions resumed so far. */
  readonly resumes: number;
  statistics(): StreamSocketStatistics;
  uses(feature: string): boolean;
  /** The features both peers announced, once the server's hello came (empty after timeoutMs). */
  negotiated(timeoutMs?: number): Promise<ReadonlySet<string>>;
  /** handler's return value (or promise; an array for several values) is the ack. */
  on(event: string, handler: (...args: any[]) => unknown): this;
  off(event: string): this;
  /** A function as the last argument receives the ack's arguments (streams decoded). */
  emit(event: string, ...args: any[]): this;
  /**
   * Resolves with the ack's arguments; rejects with StreamError: the handler failed, the
   * connection was lost (a reply pending when the transport drops comes after the resume; the
   * call fails with "Connection aborted" when the session does not resume, ResumeRefusedError
   * when the server refuses it, and with ANSWER_LOST when the server no longer holds the answer).
   */
  call(event: string, ...args: any[]): Promise<any[]>;
}

/** One StreamSocket per socket.io-client socket. */
export declare function ss(socket: SocketLike, options?: StreamSocketOptions): StreamSocket;

export interface ProgressOptions {
  onProgress?: (bytes: number, total: number | undefined) => void;
  signal?: AbortSignal;
}

/** Cuts and joins byte chunks into chunks of exactly `size` bytes (default 256 KiB; the last may be shorter). */
export declare function rechunk(size?: number): TransformStream<Uint8Array, Uint8Array>;

/** Write a Blob/File (or a ReadableStream of bytes) into stream, in chunks of the socket's maxChunk;
 * resolves with the bytes the peer accepted. */
export declare function sendBlob(stream: IOStream, blob: Blob | ReadableStream<Uint8Array>, options?: ProgressOptions): Promise<number>;

/** Pipe stream's readable side into sink; resolves with the byte count. */
export declare function receiveTo(stream: IOStream, sink: WritableStream<Uint8Array>, options?: ProgressOptions & { total?: number }): Promise<number>;

/** Save a download: File System Access API when available, else a Blob (whole file in memory). */
export declare function saveStream(
  stream: IOStream,
  options?: ProgressOptions & {
    name?: string;
    total?: number;
    method?: 'auto' | 'picker' | 'blob';
    onWarning?: (message: string) => void;
  },
): Promise<{ bytes: number; method: 'picker' | 'blob' }>;
