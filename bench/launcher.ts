/** The Node.js flags of the `ratchet` launcher (bin/ratchet), so the bench runs Ratchet as users do. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const launcherPath = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'ratchet');

/** The flags between `exec node` and the entry in the launcher's text; '' when there are none. */
export function launcherNodeFlags(launcher = readFileSync(launcherPath, 'utf8')): string {
  return /^exec node((?: --[a-z0-9-]+(?:=\S+)?)*) "/m.exec(launcher)?.[1]?.trim() ?? '';
}
