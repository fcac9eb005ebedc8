import { MemoryStorage } from '../../src/storage/memory/memory-storage.ts';
import { storageConformance } from './conformance.ts';

storageConformance('memory', {
  create: () => Promise.resolve(new MemoryStorage()),
  destroy: (storage) => storage.close(),
});
