/** The storage conformance suite on the S3 backend, against a real Ceph RGW. */
import type { S3Storage } from '../../src/storage/s3/s3-storage.ts';
import { storageConformance } from '../storage/conformance.ts';
import { removePrefix, s3StorageOnFreshPrefix } from '../helpers/s3.ts';

const prefixes = new WeakMap<S3Storage, string>();

storageConformance('s3 (Ceph RGW)', {
  async create() {
    const { storage, prefix } = await s3StorageOnFreshPrefix('conformance');
    prefixes.set(storage, prefix);
    return storage;
  },
  async destroy(storage) {
    await storage.close();
    const prefix = prefixes.get(storage as S3Storage);
    if (prefix !== undefined) await removePrefix(`${prefix}/`);
  },
});
