/** Connection timeouts shared by the plain HTTP/1.1 and the TLS (HTTP/2 + HTTP/1.1) listeners. */

/** Time a client has to send its request headers (slowloris protection); also the TLS handshake. */
export const headersTimeoutMs = 60_000;
/** A connection on which nothing moves for this long is closed; a slow upload still moves. */
export const idleTimeoutMs = 5 * 60_000;
/** How long an idle keep-alive connection stays open between requests. */
export const keepAliveTimeoutMs = 65_000;
