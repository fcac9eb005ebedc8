/**
 * The shipped monitoring: contrib/prometheus/ratchet-rules.yml passes the real `promtool check
 * rules` and `promtool test rules` (Debian package prometheus), its tests make every alert both
 * fire and stay silent, and every metric the rules and contrib/grafana/ratchet.json name is one
 * that a running server (every feature with metrics on) exports: hand-written test series could
 * share a typo with a rule, a real /metrics cannot.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { projectRoot, withTempDir } from '../helpers/ratchet-process.ts';
import { startTestServer } from '../helpers/in-process.ts';

const rulesDir = path.join(projectRoot, 'contrib', 'prometheus');
const rulesFile = path.join(rulesDir, 'ratchet-rules.yml');
const dashboardFile = path.join(projectRoot, 'contrib', 'grafana', 'ratchet.json');

/** Runs promtool in the rules folder; its output on failure. */
function promtool(...args: string[]): void {
  const run = spawnSync('promtool', args, { cwd: rulesDir, encoding: 'utf8', timeout: 60_000 });
  if (run.error !== undefined)
    throw new Error(`promtool (Debian package prometheus) cannot run: ${run.error.message}`);
  assert.equal(run.status, 0, `promtool ${args.join(' ')}:\n${run.stdout}\n${run.stderr}`);
}

interface RuleFile {
  groups: { rules: { alert?: string; expr: string }[] }[];
}
interface RuleTests {
  tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
}

/** The metric names of Ratchet (and rest-server's, which it exports) in PromQL text. */
function metricNames(exprs: readonly string[]): Set<string> {
  return new Set(exprs.flatMap((expr) => expr.match(/\b(?:ratchet|rest_server)_[a-z0-9_]+\b/g) ?? []));
}

describe('the shipped alert rules and dashboard', () => {
  it('pass promtool check rules and promtool test rules', () => {
    promtool('check', 'rules', 'ratchet-rules.yml');
    promtool('test', 'rules', 'ratchet-rules.test.yml');
  });

  it('test every alert firing and silent', async () => {
    const rules = parse(await readFile(rulesFile, 'utf8')) as RuleFile;
    const tests = parse(await readFile(path.join(rulesDir, 'ratchet-rules.test.yml'), 'utf8')) as RuleTests;
    const alerts = rules.groups.flatMap((group) => group.rules.flatMap((rule) => rule.alert ?? []));
    assert.ok(alerts.length >= 7, `the rules hold the alerts: ${alerts.join(', ')}`);
    const cases = tests.tests.flatMap((test) => test.alert_rule_test ?? []);
    for (const alert of alerts) {
      const mine = cases.filter((test) => test.alertname === alert);
      assert.ok(
        mine.some((test) => (test.exp_alerts ?? []).length > 0),
        `${alert}: a case where it fires`,
      );
      assert.ok(
        mine.some((test) => (test.exp_alerts ?? []).length === 0),
        `${alert}: a case where it stays silent`,
      );
    }
  });

  it('name only metrics a running server exports', async () => {
    const rules = parse(await readFile(rulesFile, 'utf8')) as RuleFile;
    const ruleNames = metricNames(rules.groups.flatMap((group) => group.rules.map((rule) => rule.expr)));
    const dashboardText = await readFile(dashboardFile, 'utf8');
    const dashboard = JSON.parse(dashboardText) as { panels: { targets?: { expr: string }[] }[] };
    const dashboardNames = metricNames(
      dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr)),
    );
    assert.ok(ruleNames.size >= 6 && dashboardNames.size >= 15, 'the files name metrics');

    await withTempDir(async (dir) => {
      // Every feature that adds metrics: quotas, trash, scrub.
      const server = await startTestServer(path.join(dir, 'data'), {
        prometheus: true,
        prometheusNoAuth: true,
        deleteGraceMs: 3_600_000,
        scrubIntervalMs: 3_600_000,
        quotas: { maxTotalBytes: 1 << 30, repoRules: [], userRules: [] },
      });
      try {
        const text = await (await fetch(`${server.url}/metrics`)).text();
        const exported = new Map(
          [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1] ?? '', match[2] ?? '']),
        );
        const known = (name: string): boolean => {
          if (exported.has(name)) return true;
          // A histogram's series: name_bucket, name_sum, name_count.
          const base = name.replace(/_(bucket|sum|count)$/, '');
          return base !== name && exported.get(base) === 'histogram';
        };
        for (const [file, names] of [
          ['ratchet-rules.yml', ruleNames],
          ['ratchet.json', dashboardNames],
        ] as const) {
          const unknown = [...names].filter((name) => !known(name));
          assert.deepEqual(unknown, [], `${file} names metrics the server does not export`);
        }
      } finally {
        await server.close();
      }
    });
  });
});
