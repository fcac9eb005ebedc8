/**
 * The request and response types the pipeline serves: HTTP/1.1 (node:http, also the HTTP/1.1
 * fallback of the TLS listener) and HTTP/2 (node:http2's compatibility API). Both shapes offer
 * the same surface the handlers use; the few places where HTTP/2 differs go through the helpers
 * below.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as http2Constants, Http2ServerRequest, Http2ServerResponse } from 'node:http2';

export type HttpRequest = IncomingMessage | Http2ServerRequest;
export type HttpResponse = ServerResponse | Http2ServerResponse;

/** True when the exchange runs over HTTP/2. */
function isHttp2Response(res: HttpResponse): res is Http2ServerResponse {
  return res instanceof Http2ServerResponse;
}

/** True when the request arrived over HTTP/2. */
export function isHttp2Request(req: HttpRequest): req is Http2ServerRequest {
  return req instanceof Http2ServerRequest;
}

/**
 * Whether the request may still have body bytes on the way that nobody read. `complete` stays
 * false until the request is read, also when it has no body: an HTTP/2 request whose HEADERS frame
 * ended the stream has none, and an HTTP/1.1 request has one only when it declares a length or a
 * transfer coding (RFC 9112, section 6.3), so GET and HEAD get no body guard.
 */
export function bodyPending(req: HttpRequest): boolean {
  if (req.complete) return false;
  if (isHttp2Request(req)) return !req.stream.endAfterHeaders;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Whether the exchange ended before its response was complete (the client left, or the response
 * was cut), once the response has closed. HTTP/2 marks even a reset stream's response
 * `writableFinished`, so there only an unended response or a reset with an error code count.
 */
export function responseIncomplete(res: HttpResponse): boolean {
  if (isHttp2Response(res)) {
    const code = res.stream.rstCode ?? http2Constants.NGHTTP2_NO_ERROR;
    return !res.writableEnded || code !== http2Constants.NGHTTP2_NO_ERROR;
  }
  return !res.writableFinished;
}

/**
 * Tells the client that the response it is receiving failed: the HTTP/1.1 connection is cut, an
 * HTTP/2 stream is reset with INTERNAL_ERROR (a reset with NO_ERROR could pass for a clean end).
 */
export function abortResponse(res: HttpResponse): void {
  if (isHttp2Response(res)) {
    if (!res.stream.closed) res.stream.close(http2Constants.NGHTTP2_INTERNAL_ERROR);
  } else {
    res.destroy();
  }
}

/**
 * Makes sure a request body nobody wants does not tie up the connection after the response:
 * HTTP/1.1 closes the connection (`Connection: close`), HTTP/2 resets just this stream with
 * NO_ERROR once the response is out, which RFC 9113 §8.1 defines as "stop sending the body".
 */
export function refuseUnreadBody(req: HttpRequest, res: HttpResponse): void {
  if (isHttp2Response(res)) {
    const stream = res.stream;
    // After the stream's own 'finish' and one more turn, as Node does for bodies never touched:
    // a reset sent from within 'finish' overtakes the response's last frame.
    stream.once('finish', () =>
      setImmediate(() => {
        if (!stream.closed) stream.close(http2Constants.NGHTTP2_NO_ERROR);
        // What arrived before the reset (at most one flow-control window) is discarded; a
        // paused stream with unread data would never close, and its session never either.
        req.resume();
      }),
    );
  } else {
    res.setHeader('Connection', 'close');
  }
}

// Responses whose request asked `Expect: 100-continue` and got no 100 yet.
const awaitingContinue = new WeakSet<HttpResponse>();

/** The request asked for `100 Continue`: it is sent by continueUpload, or never. */
export function expectContinue(res: HttpResponse): void {
  awaitingContinue.add(res);
}

/** Whether the client still waits for a `100 Continue` before it sends the body. */
export function continuePending(res: HttpResponse): boolean {
  return awaitingContinue.has(res);
}

/** A handler accepted the request and is about to read its body: send the 100 now, if asked for. */
export function continueUpload(res: HttpResponse): void {
  if (!awaitingContinue.delete(res) || res.headersSent) return;
  res.writeContinue();
}
