/** Writing to a response without outrunning the client, and without hanging when it leaves. */
import type { Writable } from 'node:stream';
import { RatchetError } from '../errors.ts';
import type { HttpResponse } from './http-types.ts';

/** Writes the chunk; when the socket buffer is full, waits for it to drain or for the client to go. */
export function writeWithBackpressure(res: HttpResponse, chunk: string | Uint8Array): Promise<void> {
  // Both response kinds are Writables; their write() overloads just do not unify as a union.
  const out: Writable = res;
  if (out.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      out.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      out.off('drain', onDrain);
      reject(new RatchetError('INCOMPLETE_BODY', 'client went away'));
    };
    out.once('drain', onDrain);
    out.once('close', onClose);
  });
}
