/** The Apache combined access log that rest-server's `--log` writes. */
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { HttpRequest, HttpResponse } from '../util/http-types.ts';
import { redactUrl } from './redact.ts';

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export interface AccessLog {
  /**
   * Records one finished (or abandoned) exchange. `remoteAddress` is the client's address as
   * read when the request arrived (an HTTP/2 request no longer knows it once its stream closed).
   */
  record(
    req: HttpRequest,
    res: HttpResponse,
    user: string | undefined,
    at: Date,
    remoteAddress?: string,
  ): void;
  close(): Promise<void>;
}

/** Opens the access log: `-` for standard output, otherwise a file opened for appending. */
export function openAccessLog(target: string): AccessLog {
  const out: Writable =
    target === '-' ? process.stdout : createWriteStream(target, { flags: 'a', mode: 0o640 });
  return {
    record(req, res, user, at, remoteAddress) {
      out.write(formatCombined(req, res, user, at, remoteAddress));
    },
    close() {
      if (out === process.stdout) return Promise.resolve();
      return new Promise((resolve) => out.end(resolve));
    },
  };
}

/** One line of the combined log format. */
export function formatCombined(
  req: HttpRequest,
  res: HttpResponse,
  user: string | undefined,
  at: Date,
  remoteAddress: string | undefined = req.socket.remoteAddress,
): string {
  const host = remoteAddress ?? '-';
  const length = res.getHeader('content-length');
  const bytes = length === undefined || length === 0 || length === '0' ? '-' : String(length);
  const request = `${req.method ?? '-'} ${redactUrl(req.url ?? '-')} HTTP/${req.httpVersion}`;
  const status = res.headersSent ? res.statusCode : 0;
  return `${host} - ${quoteless(user ?? '-')} [${clfDate(at)}] "${escape(request)}" ${status} ${bytes} "${escape(header(req, 'referer'))}" "${escape(header(req, 'user-agent'))}"\n`;
}

function header(req: HttpRequest, name: string): string {
  const value = req.headers[name];
  return typeof value === 'string' ? value : '-';
}

// Quotes, backslashes and control characters are escaped so a request cannot forge log lines.
// eslint-disable-next-line no-control-regex
const unsafeInLog = /["\\\u0000-\u001f\u007f]/g;

function escape(text: string): string {
  return text.replace(unsafeInLog, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function quoteless(text: string): string {
  return escape(text).replace(/\s/g, '_');
}

function clfDate(at: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const offset = -at.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const zone = `${sign}${pad(Math.floor(Math.abs(offset) / 60))}${pad(Math.abs(offset) % 60)}`;
  return `${pad(at.getDate())}/${months[at.getMonth()] ?? '???'}/${at.getFullYear()}:${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())} ${zone}`;
}
