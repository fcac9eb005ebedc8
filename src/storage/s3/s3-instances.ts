/**
 * Which Ratchet instances serve one bucket prefix: each writes a heartbeat object under
 * `<prefix>.ratchet/instances/<id>` every few seconds and removes it when it stops. Ages are
 * the store's own LastModified times compared with each other (one clock, whatever the
 * instances' clocks say), so a started instance sees the others that are alive. Several
 * instances need one shared state (--state, the same Redis); otherwise a second one is refused
 * at start.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import type { S3Layout } from './s3-layout.ts';

/** Heartbeats are written this often; one older than aliveMs is an instance that is gone. */
const heartbeatMs = 10_000;
const aliveMs = 35_000;

/** Another instance that was alive at the last look: its id and how old its heartbeat was. */
export interface LiveInstance {
  readonly id: string;
  readonly ageMs: number;
  /** What its heartbeat says; undefined when it could not be read. */
  readonly facts: Partial<InstanceFacts> | undefined;
}

/** What an instance says about itself in its heartbeat. */
export interface InstanceFacts {
  /** It runs with --state. */
  readonly shared: boolean;
  /** The shared state's own id (the same for every client of one Redis); undefined: unknown. */
  readonly stateId: string | undefined;
  /** The keys its shared usage and leases live under (from the storage's configuration). */
  readonly namespace: string | undefined;
}

/**
 * An instance's name: the host and its local folder (--path), so that a server restarted after a
 * crash recognises the heartbeat it left and is not refused as a second instance.
 */
export function instanceIdFor(localFolder: string): string {
  const folder = createHash('sha256').update(path.resolve(localFolder)).digest('hex').slice(0, 12);
  return `${os.hostname()}-${folder}`;
}

/**
 * Why this server may not run beside the other live ones, or undefined when it may: several
 * instances must all run with --state (a heartbeat that could not be read counts as one without),
 * and with the same Redis where both sides know its id (one that was away at start is not held
 * against a restart).
 */
export function whyNotBeside(others: readonly LiveInstance[], own: InstanceFacts): string | undefined {
  if (others.length === 0) return undefined;
  const list = others.map((other) => `${other.id} (${Math.round(other.ageMs / 1000)} s ago)`).join(', ');
  const fix = 'give each the same --state redis://HOST:PORT (docs/scale-out.md)';
  if (!own.shared || others.some((other) => other.facts?.shared !== true))
    return `${list}; several instances must share their state (quotas, throttles, leases): ${fix}`;
  const elsewhere = others.filter(
    (other) =>
      own.stateId !== undefined && other.facts?.stateId !== undefined && other.facts.stateId !== own.stateId,
  );
  if (elsewhere.length > 0)
    return `${list}; ${elsewhere.map((other) => other.id).join(', ')} use(s) another Redis: ${fix}`;
  const apart = others.filter(
    (other) =>
      own.namespace !== undefined &&
      other.facts?.namespace !== undefined &&
      other.facts.namespace !== own.namespace,
  );
  if (apart.length > 0)
    return `${list}; ${apart.map((other) => other.id).join(', ')} name(s) the storage differently (--storage, --s3-endpoint), so quotas would not be shared: give every instance the same storage options`;
  return undefined;
}

export class InstanceRegistry {
  readonly id: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly layout: S3Layout;
  private readonly logger: Logger | undefined;
  private timer: NodeJS.Timeout | undefined;
  private facts: InstanceFacts = { shared: false, stateId: undefined, namespace: undefined };

  /** `id` names this instance: the same on a restart (so a crashed run's heartbeat is its own). */
  constructor(id: string, client: S3Client, bucket: string, layout: S3Layout, logger: Logger | undefined) {
    this.id = id;
    this.client = client;
    this.bucket = bucket;
    this.layout = layout;
    this.logger = logger;
  }

  /** Writes the first heartbeat and answers the other live instances; keeps beating until stop(). */
  async join(facts: InstanceFacts): Promise<LiveInstance[]> {
    this.facts = facts;
    await this.beat();
    const others = await this.others();
    this.timer = setInterval(() => {
      this.beat().catch((err: unknown) =>
        this.logger?.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'instance heartbeat failed',
        ),
      );
    }, heartbeatMs);
    this.timer.unref();
    return others;
  }

  /** Stops the heartbeats and removes this instance's object. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.client
      .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.layout.instanceKey(this.id) }))
      .catch(() => undefined);
  }

  private async beat(): Promise<void> {
    const body = JSON.stringify({
      id: this.id,
      host: os.hostname(),
      pid: process.pid,
      at: new Date().toISOString(),
      shared: this.facts.shared,
      stateId: this.facts.stateId,
      namespace: this.facts.namespace,
    });
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: this.layout.instanceKey(this.id), Body: body }),
    );
  }

  /** The instances besides this one whose heartbeat is younger than aliveMs, by the store's clock. */
  private async others(): Promise<LiveInstance[]> {
    const prefix = this.layout.instancesPrefix();
    const seen: { id: string; at: number }[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const item of page.Contents ?? []) {
        if (item.Key === undefined || item.LastModified === undefined) continue;
        seen.push({ id: item.Key.slice(prefix.length), at: item.LastModified.getTime() });
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    const own = seen.find((entry) => entry.id === this.id)?.at ?? Date.now();
    const alive = seen.filter((entry) => entry.id !== this.id && own - entry.at < aliveMs);
    return Promise.all(
      alive.map(async (entry) => ({
        id: entry.id,
        ageMs: Math.max(0, own - entry.at),
        facts: await this.factsOf(entry.id),
      })),
    );
  }

  /** What another instance's heartbeat says; undefined when it cannot be read (gone meanwhile). */
  private async factsOf(id: string): Promise<Partial<InstanceFacts> | undefined> {
    try {
      const answer = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.layout.instanceKey(id) }),
      );
      const parsed: unknown = JSON.parse((await answer.Body?.transformToString()) ?? '');
      return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
    } catch {
      return undefined;
    }
  }
}
