/** The trash verbs on the S3 backend (a trash prefix in the same bucket), against a real Ceph RGW. */
import { after } from 'node:test';
import { removePrefix, s3StorageOnFreshPrefix } from '../helpers/s3.ts';
import { trashConformance } from '../storage/trash-conformance.ts';

const prefixes: string[] = [];
after(async () => {
  for (const prefix of prefixes) await removePrefix(`${prefix}/`);
});

trashConformance('s3 (Ceph RGW)', async () => {
  const { storage, prefix } = await s3StorageOnFreshPrefix('trash');
  prefixes.push(prefix);
  return storage;
});
