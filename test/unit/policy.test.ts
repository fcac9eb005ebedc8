import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capRole, decide } from '../../src/access/policy.ts';
import type { Operation, Resource, Role } from '../../src/access/policy.ts';

const operations: Operation[] = ['create-repo', 'read', 'list', 'write', 'delete'];
const resources: Resource[] = ['repo', 'config', 'data', 'keys', 'locks', 'snapshots', 'index'];

// The decision table: role → operation → resource → allowed. 'repo' only takes create-repo.
function expected(role: Role, operation: Operation, resource: Resource): boolean {
  if (operation === 'read' || operation === 'list') return true;
  if (resource === 'locks') return true;
  if (role === 'admin') return true;
  if (role === 'read-only') return false;
  return operation !== 'delete';
}

describe('access decision', () => {
  it('follows the table for every role, operation and resource', () => {
    for (const role of ['read-only', 'append-only', 'admin'] as const) {
      for (const operation of operations) {
        for (const resource of resources) {
          assert.equal(
            decide(role, operation, resource).allowed,
            expected(role, operation, resource),
            `${role} ${operation} ${resource}`,
          );
        }
      }
    }
  });

  it('spells out the rules that matter most', () => {
    assert.equal(decide('append-only', 'delete', 'data').allowed, false);
    assert.equal(decide('append-only', 'delete', 'config').allowed, false);
    assert.equal(decide('append-only', 'delete', 'locks').allowed, true);
    assert.equal(decide('append-only', 'write', 'snapshots').allowed, true);
    assert.equal(decide('read-only', 'write', 'data').allowed, false);
    assert.equal(decide('read-only', 'write', 'locks').allowed, true);
    assert.equal(decide('read-only', 'create-repo', 'repo').allowed, false);
    assert.equal(decide('admin', 'delete', 'data').allowed, true);
  });

  it('caps a role at a ceiling', () => {
    assert.equal(capRole('admin', 'append-only'), 'append-only');
    assert.equal(capRole('read-only', 'admin'), 'read-only');
    assert.equal(capRole('append-only', 'append-only'), 'append-only');
  });
});
