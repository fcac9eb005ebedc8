/**
 * The load generator: a minimal HTTP/1.1 keep-alive client on node:net, one connection per
 * concurrent worker. It reads into one reused buffer (net's `onread`), counts body bytes
 * instead of copying them, and sends bodies from shared buffers, so that on a 2-core machine
 * it takes as little CPU from the server under test as a client in Node can. node:http's client
 * spent about 3 times more CPU per request here (its HEAD and GET rates were client-bound).
 */
import net from 'node:net';

/** Where requests go. */
export interface Target {
  readonly host: string;
  readonly port: number;
}

/** One request: the body is sent as the given chunks, in order, with an exact Content-Length. */
export interface RequestSpec {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'DELETE';
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: readonly Buffer[];
  /** Keep the response body (listings); otherwise it is only counted. */
  readonly collect?: boolean;
  readonly timeoutMs?: number;
}

/** What came back. Header names are lower case. */
export interface ResponseInfo {
  readonly status: number;
  readonly headers: ReadonlyMap<string, string>;
  readonly bytes: number;
  readonly body: Buffer | undefined;
}

const readBufferSize = 256 * 1024;
const maxHeaderBytes = 64 * 1024;
const headerEnd = Buffer.from('\r\n\r\n');

interface Pending {
  readonly spec: RequestSpec;
  readonly resolve: (info: ResponseInfo) => void;
  readonly reject: (err: Error) => void;
  head: Buffer;
  status: number;
  headers: Map<string, string>;
  /** Body bytes still expected (content-length), -1 for chunked, -2 for until close. */
  remaining: number;
  bytes: number;
  chunks: Buffer[];
  chunk: ChunkState;
}

/** Decoder state for a chunked body. */
interface ChunkState {
  phase: 'size' | 'data' | 'crlf' | 'trailer';
  line: string;
  left: number;
}

/** One keep-alive connection that carries one request at a time. */
export class Connection {
  private socket: net.Socket | undefined;
  private pending: Pending | undefined;
  private readonly hostHeader: string;
  private readonly target: Target;

  constructor(target: Target) {
    this.target = target;
    this.hostHeader = `${target.host}:${target.port}`;
  }

  /** Sends one request (connecting first when needed) and resolves when the response ended. */
  async request(spec: RequestSpec): Promise<ResponseInfo> {
    if (this.pending !== undefined) throw new Error('connection busy');
    const socket = this.socket ?? (await this.connect());
    return new Promise<ResponseInfo>((resolve, reject) => {
      this.pending = {
        spec,
        resolve,
        reject,
        head: Buffer.alloc(0),
        status: 0,
        headers: new Map(),
        remaining: 0,
        bytes: 0,
        chunks: [],
        chunk: { phase: 'size', line: '', left: 0 },
      };
      socket.setTimeout(spec.timeoutMs ?? 60_000);
      let length = 0;
      for (const chunk of spec.body ?? []) length += chunk.length;
      let head = `${spec.method} ${spec.path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\n`;
      for (const [name, value] of Object.entries(spec.headers ?? {})) head += `${name}: ${value}\r\n`;
      if (spec.body !== undefined || spec.method === 'POST') head += `Content-Length: ${length}\r\n`;
      head += '\r\n';
      socket.cork();
      socket.write(head);
      for (const chunk of spec.body ?? []) socket.write(chunk);
      socket.uncork();
    });
  }

  /** Closes the connection. */
  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host: this.target.host,
        port: this.target.port,
        noDelay: true,
        onread: {
          buffer: Buffer.allocUnsafe(readBufferSize),
          callback: (n: number, buf: Uint8Array) => {
            this.onData(buf as Buffer, n);
            return true;
          },
        },
      });
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.on('error', (err) => this.fail(err));
        this.socket = socket;
        resolve(socket);
      });
      socket.once('error', reject);
      socket.on('timeout', () => {
        this.fail(new Error(`timeout: ${this.pending?.spec.method ?? ''} ${this.pending?.spec.path ?? ''}`));
        socket.destroy();
      });
      socket.on('close', () => {
        if (this.socket === socket) this.socket = undefined;
        const p = this.pending;
        if (p !== undefined && p.remaining === -2 && p.status !== 0) this.finish();
        else this.fail(new Error('connection closed by the server'));
      });
    });
  }

  private fail(err: Error): void {
    const p = this.pending;
    this.pending = undefined;
    this.socket?.destroy();
    this.socket = undefined;
    p?.reject(err);
  }

  private finish(): void {
    const p = this.pending;
    if (p === undefined) return;
    this.pending = undefined;
    this.socket?.setTimeout(0);
    if (p.headers.get('connection')?.toLowerCase() === 'close') this.close();
    p.resolve({
      status: p.status,
      headers: p.headers,
      bytes: p.bytes,
      body: p.spec.collect ? Buffer.concat(p.chunks) : undefined,
    });
  }

  /** Consumes `n` bytes that arrived in the shared read buffer (valid only during this call). */
  private onData(buf: Buffer, n: number): void {
    const p = this.pending;
    if (p === undefined) {
      if (n > 0) this.fail(new Error('unexpected bytes from the server'));
      return;
    }
    let offset = 0;
    if (p.status === 0) {
      const joined = p.head.length > 0 ? Buffer.concat([p.head, buf.subarray(0, n)]) : buf.subarray(0, n);
      const end = joined.indexOf(headerEnd);
      if (end < 0) {
        if (joined.length > maxHeaderBytes) return this.fail(new Error('response header too large'));
        p.head = Buffer.from(joined);
        return;
      }
      this.parseHead(p, joined.toString('latin1', 0, end));
      offset = end + 4 - p.head.length;
      p.head = Buffer.alloc(0);
      if (p.status === 0) return this.fail(new Error('malformed status line'));
      if (p.remaining === 0) {
        if (offset < n) return this.fail(new Error('bytes after the end of a response'));
        return this.finish();
      }
    }
    this.consumeBody(p, buf, offset, n);
  }

  private parseHead(p: Pending, text: string): void {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    p.status = status ? Number(status[1]) : 0;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon > 0) p.headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const noBody = p.spec.method === 'HEAD' || p.status === 204 || p.status === 304 || p.status < 200;
    const length = p.headers.get('content-length');
    if (noBody) p.remaining = 0;
    else if (p.headers.get('transfer-encoding')?.toLowerCase().includes('chunked')) p.remaining = -1;
    else if (length !== undefined) p.remaining = Number(length);
    else p.remaining = -2;
  }

  private consumeBody(p: Pending, buf: Buffer, start: number, end: number): void {
    if (p.remaining === -1) return this.consumeChunked(p, buf, start, end);
    let take = end - start;
    if (p.remaining >= 0) take = Math.min(take, p.remaining);
    if (take > 0) {
      p.bytes += take;
      if (p.spec.collect) p.chunks.push(Buffer.from(buf.subarray(start, start + take)));
      if (p.remaining >= 0) p.remaining -= take;
    }
    if (p.remaining === 0) {
      if (start + take < end) return this.fail(new Error('bytes after the end of a response'));
      this.finish();
    }
  }

  private consumeChunked(p: Pending, buf: Buffer, start: number, end: number): void {
    const c = p.chunk;
    let i = start;
    while (i < end) {
      if (c.phase === 'data') {
        const take = Math.min(c.left, end - i);
        p.bytes += take;
        if (p.spec.collect) p.chunks.push(Buffer.from(buf.subarray(i, i + take)));
        c.left -= take;
        i += take;
        if (c.left === 0) c.phase = 'crlf';
        continue;
      }
      const nl = buf.indexOf(10, i);
      const stop = nl < 0 || nl >= end ? end : nl + 1;
      c.line += buf.toString('latin1', i, stop);
      i = stop;
      if (!c.line.endsWith('\n')) continue;
      const line = c.line.trim();
      c.line = '';
      if (c.phase === 'crlf') c.phase = 'size';
      else if (c.phase === 'size') {
        const size = parseInt(line.split(';')[0] ?? '', 16);
        if (!Number.isFinite(size)) return this.fail(new Error('bad chunk size'));
        if (size === 0) c.phase = 'trailer';
        else {
          c.phase = 'data';
          c.left = size;
        }
      } else if (line === '') {
        p.remaining = 0;
        if (i < end) return this.fail(new Error('bytes after the end of a response'));
        return this.finish();
      }
    }
  }
}

/** Limits of one measurement: at most `count` operations, none started after `seconds`. */
export interface PoolLimits {
  readonly concurrency: number;
  readonly count: number;
  readonly seconds: number;
}

/** Outcome of one measurement. */
export interface PoolResult {
  readonly completed: number;
  readonly failed: number;
  /** Payload bytes moved by the completed operations. */
  readonly bytes: number;
  readonly seconds: number;
  readonly firstError: string | undefined;
}

/** Stop a measurement early once this many operations failed: the server is broken. */
const maxFailures = 20;

/**
 * Runs `op(i, connection)` for i = 0, 1, ... on `concurrency` connections (one per worker)
 * until `count` are done or the time cap passes. `op` resolves with the payload bytes it
 * moved, or throws on failure. The connections are closed at the end.
 */
export async function runPool(
  target: Target,
  limits: PoolLimits,
  op: (index: number, connection: Connection) => Promise<number>,
): Promise<PoolResult> {
  const started = process.hrtime.bigint();
  const deadline = Date.now() + limits.seconds * 1000;
  let next = 0;
  let completed = 0;
  let failed = 0;
  let bytes = 0;
  let firstError: string | undefined;
  let finished = started;
  const connections: Connection[] = [];
  const worker = async (connection: Connection): Promise<void> => {
    while (next < limits.count && Date.now() < deadline && failed < maxFailures) {
      const index = next++;
      try {
        bytes += await op(index, connection);
        completed++;
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
      finished = process.hrtime.bigint();
    }
  };
  try {
    const workers: Promise<void>[] = [];
    for (let i = 0; i < limits.concurrency; i++) {
      const connection = new Connection(target);
      connections.push(connection);
      workers.push(worker(connection));
    }
    await Promise.all(workers);
  } finally {
    for (const c of connections) c.close();
  }
  return { completed, failed, bytes, seconds: Number(finished - started) / 1e9, firstError };
}

/** Sends a single request on a fresh connection and closes it. */
export async function sendOnce(target: Target, spec: RequestSpec): Promise<ResponseInfo> {
  const connection = new Connection(target);
  try {
    return await connection.request(spec);
  } finally {
    connection.close();
  }
}

/** Throws unless the status is one of the expected ones. */
export function expectStatus(info: ResponseInfo, expected: readonly number[], what: string): void {
  if (!expected.includes(info.status)) throw new Error(`${what}: HTTP ${info.status}`);
}
