// Preload for memory investigations: `node --import ./bench/memlog.mjs dist/cli/main.js ...` with
// MEMLOG=/path appends one JSON line every 250 ms: RSS, V8 heap spaces, external and array buffers.
import { appendFileSync } from 'node:fs';
import { setInterval } from 'node:timers';
import v8 from 'node:v8';

const file = process.env.MEMLOG;
if (file) {
  const mib = (x) => Math.round((x / 1048576) * 10) / 10;
  setInterval(() => {
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(
      v8.getHeapSpaceStatistics().map((s) => [s.space_name.replace('_space', ''), mib(s.space_size)]),
    );
    appendFileSync(
      file,
      `${JSON.stringify({ t: Date.now(), rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed), external: mib(m.external), arrayBuffers: mib(m.arrayBuffers), spaces })}\n`,
    );
  }, 250).unref();
}
