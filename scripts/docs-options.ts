/** Rewrites the option table of docs/configuration.md from src/config/options.ts (npm run docs:options). */
import { readFile, writeFile } from 'node:fs/promises';
import { withOptionTable } from '../src/config/options-doc.ts';

const file = new URL('../docs/configuration.md', import.meta.url);
await writeFile(file, withOptionTable(await readFile(file, 'utf8')));
