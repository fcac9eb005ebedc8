/**
 * Streams a listing as restic's v1 (names) or v2 (names and sizes) JSON. restic recognises v2
 * only by the exact Content-Type, with no charset parameter.
 */
import type { ObjectEntry } from '../domain/object-ref.ts';
import type { HttpResponse } from '../util/http-types.ts';
import { writeWithBackpressure } from '../util/response-stream.ts';

export const v2MediaType = 'application/vnd.x.restic.rest.v2';
export const v1MediaType = 'application/vnd.x.restic.rest.v1';

const flushBytes = 64 * 1024;

/** The listing format the Accept header asks for: v2 only when it is exactly the v2 type. */
export function listFormat(accept: string | undefined): 'v1' | 'v2' {
  return accept === v2MediaType ? 'v2' : 'v1';
}

/** One entry as JSON text in the given format. */
export function encodeEntry(entry: ObjectEntry, format: 'v1' | 'v2'): string {
  return format === 'v2' ? `{"name":"${entry.name}","size":${entry.size}}` : `"${entry.name}"`;
}

/**
 * Sends the listing. The first entry is awaited before the headers go out, so a missing
 * repository can still be answered with a status; later failures cut the connection.
 */
export async function sendListing(
  res: HttpResponse,
  entries: AsyncIterable<ObjectEntry>,
  format: 'v1' | 'v2',
  headOnly: boolean,
): Promise<void> {
  const iterator = entries[Symbol.asyncIterator]();
  let next = await iterator.next();
  res.statusCode = 200;
  res.setHeader('Content-Type', format === 'v2' ? v2MediaType : v1MediaType);
  if (headOnly) {
    await iterator.return?.();
    res.end();
    return;
  }
  let buffer = '[';
  let first = true;
  while (!next.done) {
    buffer += (first ? '' : ',') + encodeEntry(next.value, format);
    first = false;
    if (buffer.length >= flushBytes) {
      await writeWithBackpressure(res, buffer);
      buffer = '';
    }
    next = await iterator.next();
  }
  res.end(`${buffer}]`);
}
