import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capRole, decide } from '../../src/access/policy.ts';
import type { Decision, Operation, Resource, Role } from '../../src/access/policy.ts';
import { objectTypes } from '../../src/domain/object-types.ts';

// The expected decisions, written out: no rule of the policy is restated as code here.
const ok: Decision = { allowed: true };
const RO: Decision = { allowed: false, reason: 'read-only access' };
const AO: Decision = { allowed: false, reason: 'append-only access: deleting is not allowed' };

// Every operation the router can ask about, with the decision for each effective role.
// prettier-ignore
const decisions: readonly (readonly [Operation, Resource, Decision, Decision, Decision])[] = [
  // operation    resource     read-only  append-only  admin
  ['create-repo', 'repo',      RO,        ok,          ok],
  ['read',        'config',    ok,        ok,          ok],
  ['write',       'config',    RO,        ok,          ok],
  ['delete',      'config',    RO,        AO,          ok],
  ['list',        'data',      ok,        ok,          ok],
  ['read',        'data',      ok,        ok,          ok],
  ['write',       'data',      RO,        ok,          ok],
  ['delete',      'data',      RO,        AO,          ok],
  ['list',        'keys',      ok,        ok,          ok],
  ['read',        'keys',      ok,        ok,          ok],
  ['write',       'keys',      RO,        ok,          ok],
  ['delete',      'keys',      RO,        AO,          ok],
  ['list',        'locks',     ok,        ok,          ok],
  ['read',        'locks',     ok,        ok,          ok],
  ['write',       'locks',     ok,        ok,          ok],
  ['delete',      'locks',     ok,        ok,          ok],
  ['list',        'snapshots', ok,        ok,          ok],
  ['read',        'snapshots', ok,        ok,          ok],
  ['write',       'snapshots', RO,        ok,          ok],
  ['delete',      'snapshots', RO,        AO,          ok],
  ['list',        'index',     ok,        ok,          ok],
  ['read',        'index',     ok,        ok,          ok],
  ['write',       'index',     RO,        ok,          ok],
  ['delete',      'index',     RO,        AO,          ok],
];

// A user's granted role under a listener's (or the process's) ceiling.
// prettier-ignore
const ceilings: readonly (readonly [Role, Role, Role])[] = [
  // granted      ceiling        effective
  ['read-only',   'read-only',   'read-only'],
  ['read-only',   'append-only', 'read-only'],
  ['read-only',   'admin',       'read-only'],
  ['append-only', 'read-only',   'read-only'],
  ['append-only', 'append-only', 'append-only'],
  ['append-only', 'admin',       'append-only'],
  ['admin',       'read-only',   'read-only'],
  ['admin',       'append-only', 'append-only'],
  ['admin',       'admin',       'admin'],
];

const column: Readonly<Record<Role, 2 | 3 | 4>> = { 'read-only': 2, 'append-only': 3, admin: 4 };

describe('access decision', () => {
  it('has a row for every operation on every resource a request can name', () => {
    const rows = new Set(decisions.map(([operation, resource]) => `${operation} ${resource}`));
    assert.equal(rows.size, decisions.length, 'no row twice');
    const wanted = ['create-repo repo', 'read config', 'write config', 'delete config'];
    for (const type of objectTypes)
      for (const op of ['list', 'read', 'write', 'delete']) wanted.push(`${op} ${type}`);
    assert.deepEqual([...rows].sort(), wanted.sort());
  });

  it('caps a granted role at the ceiling', () => {
    for (const [granted, ceiling, effective] of ceilings)
      assert.equal(capRole(granted, ceiling), effective, `${granted} under ${ceiling}`);
  });

  it('decides every row for every granted role under every ceiling, as the request handler asks', () => {
    for (const row of decisions) {
      const [operation, resource] = row;
      for (const [granted, ceiling, effective] of ceilings) {
        assert.deepEqual(
          decide(capRole(granted, ceiling), operation, resource),
          row[column[effective]],
          `${operation} ${resource} by ${granted} under ${ceiling}`,
        );
      }
    }
  });
});
