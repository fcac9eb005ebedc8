/** Small HTTP helpers for black-box tests against a real socket. */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';

export const v2 = 'application/vnd.x.restic.rest.v2';

/** An HTTP Basic Authorization header value. */
export const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

export const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** Random content together with its SHA-256 name. */
export function blob(size: number): { data: Buffer; name: string } {
  const data = randomBytes(size);
  return { data, name: sha256(data) };
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface RawOptions {
  readonly headers?: Record<string, string | number>;
  readonly body?: Buffer;
  /** The local address to send from (127.0.0.0/8 is all loopback on Linux). */
  readonly localAddress?: string;
  /** Connect to this unix socket instead of the base URL's host and port. */
  readonly socketPath?: string;
  /** Fail instead of waiting longer than this for the answer (a server that stopped answering). */
  readonly timeoutMs?: number;
}

/**
 * Sends one request with node:http (unlike fetch, it leaves headers such as Content-Length
 * and Transfer-Encoding exactly as the server sent them, and sends paths unnormalised).
 */
export function raw(
  base: string,
  method: string,
  path: string,
  options: RawOptions = {},
): Promise<RawResponse> {
  const url = new URL(base);
  const { headers, localAddress, socketPath, timeoutMs } = options;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...(socketPath === undefined ? { host: url.hostname, port: url.port } : { socketPath }),
        method,
        path,
        headers,
        localAddress,
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (chunk: Buffer) => parts.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Uploads content under its name (or the given name) with POST. */
export function upload(
  base: string,
  repoPath: string,
  type: string,
  data: Buffer,
  name = sha256(data),
  method = 'POST',
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return raw(base, method, `${repoPath}${type}/${name}`, {
    headers: {
      ...headers,
      'Content-Type': 'application/octet-stream',
      'Content-Length': data.length,
      Accept: v2,
    },
    body: data,
  });
}
