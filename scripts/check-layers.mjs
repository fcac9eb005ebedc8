#!/usr/bin/env node
// The layering rule of `npm run check`: reads the relative imports of every .ts file below src/
// and fails on
//   - an import cycle between files (type-only imports count too: they tie modules together),
//   - an import that goes up the one-way flow of the table below,
//   - an entry of the exceptions list that no longer occurs, so the list can only shrink.
//
// Usage: node scripts/check-layers.mjs                    checks src/ with the exceptions below
//        node scripts/check-layers.mjs folder [known ...]  checks another tree (the unit test's
//                                                          fake ones) with the given exceptions
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

// The layers from the top of the flow to its bottom. A file may import files of its own layer
// and of any layer further down, never one further up. Each layer is a folder of src/ (`errors`
// is src/errors.ts); folders that do not exist yet are listed so that their place is settled.
const tiers = [
  ['cli'],
  ['server'],
  ['config'],
  ['http'],
  ['protocol'],
  ['access', 'auth', 'quota', 'limits', 'metrics', 'log', 'usage', 'state', 'scrub', 'trash', 'view'],
  ['storage'],
  ['domain'],
  ['errors', 'util'],
];
// Layers held to less than the rule allows: the domain types are shared by every layer and
// import nothing but the error catalogue.
const only = { domain: ['errors'] };

// Today's known violations, `importer -> imported` relative to src/ (a cycle as its files, from
// the alphabetically first, back to it). Remove an entry when it goes away (the check fails until
// you do); never add one.
const exceptions = [];

/** Every .ts file below root, as paths relative to it with forward slashes. */
function sourceFiles(root, dir = '') {
  const files = [];
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const relative = dir === '' ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) files.push(...sourceFiles(root, relative));
    else if (entry.name.endsWith('.ts')) files.push(relative);
  }
  return files.sort();
}

/** The relative import specifiers of a source text (static, re-exports, dynamic), comments left out. */
function importsOf(text) {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const found = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(?\s*)'(\.[^']*)'/g;
  for (let match = pattern.exec(code); match !== null; match = pattern.exec(code)) found.push(match[1]);
  return found;
}

/** The layer of a file relative to the root: its top folder, or its name for a top-level file. */
function layerOf(file) {
  const [top = ''] = file.split('/');
  return top.endsWith('.ts') ? top.slice(0, -'.ts'.length) : top;
}

const rank = new Map(tiers.flatMap((names, index) => names.map((name) => [name, index])));

/** Whether a file of layer `from` may import one of layer `to`. */
function allowed(from, to) {
  if (from === to) return true;
  if (Object.hasOwn(only, from)) return only[from].includes(to);
  return (rank.get(to) ?? -1) >= (rank.get(from) ?? Infinity);
}

/** Every cycle of the import graph, each once, as a list of files starting at its smallest. */
function cyclesOf(graph) {
  const cycles = new Map();
  const state = new Map(); // 1: on the current path, 2: done
  const stack = [];
  const visit = (file) => {
    state.set(file, 1);
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 1) {
        const cycle = stack.slice(stack.indexOf(next));
        const start = cycle.indexOf([...cycle].sort()[0]);
        const rotated = [...cycle.slice(start), ...cycle.slice(0, start)];
        cycles.set(rotated.join(' -> '), rotated);
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 2);
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return [...cycles.values()];
}

/** Checks the tree at root; returns the problems found, one line each. */
export function checkLayers(root, known) {
  const files = sourceFiles(root);
  const graph = new Map();
  const problems = [];
  const seen = new Set();
  for (const file of files) {
    const targets = new Set();
    for (const specifier of importsOf(readFileSync(path.join(root, file), 'utf8'))) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
      if (target.startsWith('..')) {
        problems.push(`${file} imports ${specifier}, outside the checked tree`);
        continue;
      }
      targets.add(target);
    }
    graph.set(file, [...targets].sort());
    for (const target of graph.get(file)) {
      const from = layerOf(file);
      const to = layerOf(target);
      for (const layer of [from, to])
        if (!rank.has(layer))
          problems.push(`${layer} (${file}) is in no layer: add it to scripts/check-layers.mjs`);
      if (!rank.has(from) || !rank.has(to) || allowed(from, to)) continue;
      const edge = `${file} -> ${target}`;
      if (known.includes(edge)) seen.add(edge);
      else
        problems.push(
          `${edge}: ${from} may not import ${to} (the flow is one-way, see scripts/check-layers.mjs)`,
        );
    }
  }
  for (const cycle of cyclesOf(graph)) {
    const edge = [...cycle, cycle[0]].join(' -> ');
    if (known.includes(edge)) seen.add(edge);
    else problems.push(`import cycle: ${edge}`);
  }
  for (const edge of known)
    if (!seen.has(edge))
      problems.push(`${edge}: listed as a known exception but no longer occurs; remove it`);
  return [...new Set(problems)];
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === import.meta.filename;
if (isMain) {
  const [folder, ...known] = process.argv.slice(2);
  const root = path.resolve(folder ?? path.join(import.meta.dirname, '..', 'src'));
  const problems = checkLayers(root, folder === undefined ? exceptions : known);
  for (const problem of problems) console.error(`check-layers: ${problem}`);
  if (problems.length > 0) process.exit(1);
  const left = folder === undefined ? exceptions.length : known.length;
  console.log(`check-layers: ${root} follows the layer table (${left} known exceptions left)`);
}
