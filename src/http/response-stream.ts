/** Writing to a response without outrunning the client, and without hanging when it leaves. */
import type { ServerResponse } from 'node:http';
import { RatchetError } from '../errors.ts';

/** Writes the chunk; when the socket buffer is full, waits for it to drain or for the client to go. */
export function writeWithBackpressure(res: ServerResponse, chunk: string | Uint8Array): Promise<void> {
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      res.off('drain', onDrain);
      reject(new RatchetError('INCOMPLETE_BODY', 'client went away'));
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
