/**
 * The S3 client as S3-compatible stores need it (measured on Ceph RGW 16): checksums only where an
 * operation requires them (the SDK's default aws-chunked trailer gets 411 there), path-style
 * addressing, one attempt per call (restic retries on 503; a streamed body cannot be re-sent) and
 * keep-alive connections sized for the load. Credentials come from the SDK's standard chain: the
 * AWS_* environment variables, then the shared config and credentials files; never from a flag.
 */
import http from 'node:http';
import https from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';

export interface S3ClientSettings {
  /** The store's URL, e.g. http://127.0.0.1:7480; AWS's own endpoint when undefined. */
  readonly endpoint: string | undefined;
  /** The region; AWS_REGION, else us-east-1 (what S3-compatible stores accept) when undefined. */
  readonly region: string | undefined;
  /** Connections kept open to the store. */
  readonly maxSockets: number;
}

/** A client for one store. */
export function createS3Client(settings: S3ClientSettings): S3Client {
  // The SDK is pinned to the last version for Node 20 (docs/s3.md); its notice says so on every start.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const agentOptions = {
    keepAlive: true,
    maxSockets: settings.maxSockets,
    maxFreeSockets: settings.maxSockets,
  };
  return new S3Client({
    endpoint: settings.endpoint,
    region: settings.region ?? process.env['AWS_REGION'] ?? 'us-east-1',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({
      httpAgent: new http.Agent(agentOptions),
      httpsAgent: new https.Agent(agentOptions),
      connectionTimeout: 5000,
      // No answer for this long means the store is stuck: the call fails (503 to the client).
      requestTimeout: 120_000,
    }),
  });
}
