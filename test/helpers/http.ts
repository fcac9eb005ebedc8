/** Small HTTP helpers for black-box tests against a real socket. */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';

export const v2 = 'application/vnd.x.restic.rest.v2';

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

/**
 * Sends one request with node:http (unlike fetch, it leaves headers such as Content-Length
 * and Transfer-Encoding exactly as the server sent them, and sends paths unnormalised).
 */
export function raw(
  base: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string | number>; body?: Buffer } = {},
): Promise<RawResponse> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, method, path, headers: options.headers, agent: false },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (chunk: Buffer) => parts.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
        );
        res.on('error', reject);
      },
    );
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
): Promise<RawResponse> {
  return raw(base, method, `${repoPath}${type}/${name}`, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length, Accept: v2 },
    body: data,
  });
}
