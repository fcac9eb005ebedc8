/**
 * The web view's page: a summary line and one table row per repository, rendered on the server
 * so the table is whole without JavaScript. Every name (repository paths, user names from
 * htpasswd) goes through escapeHtml; the sparkline is an SVG built from numbers only.
 */
import type { RepoRow } from '../view/repo-report.ts';

export const uiPath = '/.ratchet/ui/';

const needsEscape = /[&<>"']/;

/** Text for HTML: the five characters that could start markup or end an attribute, escaped. */
export function escapeHtml(text: string): string {
  // Most names need nothing: testing first spares a replace (and a new string) per cell.
  if (!needsEscape.test(text)) return text;
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

function bytes(value: number): string {
  let at = 0;
  let shown = value;
  while (shown >= 1024 && at < units.length - 1) {
    shown /= 1024;
    at++;
  }
  return `${at === 0 ? shown : shown.toFixed(1)} ${units[at] ?? 'B'}`;
}

function age(seconds: number | undefined): string {
  if (seconds === undefined) return '';
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}

function isoMinute(iso: string): string {
  return iso.replace('T', ' ').replace(/:\d\d\.\d+Z$/, 'Z');
}

interface CellOptions {
  /** The value the script sorts by (numbers sort as numbers). */
  readonly sort?: string | number;
  readonly className?: string;
  readonly title?: string;
  /** Markup built here from numbers only (the sparkline), placed after the text. */
  readonly markup?: string;
}

function cell(text: string, options: CellOptions = {}): string {
  const { sort, className, title, markup = '' } = options;
  const attrs = [
    sort === undefined ? '' : ` data-sort="${escapeHtml(String(sort))}"`,
    className === undefined ? '' : ` class="${className}"`,
    title === undefined ? '' : ` title="${escapeHtml(title)}"`,
  ].join('');
  return `<td${attrs}>${escapeHtml(text)}${markup}</td>`;
}

/**
 * The series as an inline SVG polyline scaled to its own range (no script and no style attribute:
 * the page's CSP allows neither inline); empty when fewer than two days are known. Whole-pixel
 * coordinates (the view box is the drawn 90x18 pixels) keep the markup small.
 */
export function sparkline(values: readonly (number | undefined)[]): string {
  const known = values.flatMap((value, at) => (value === undefined ? [] : [{ at, value }]));
  if (known.length < 2) return '';
  let low = Infinity;
  let high = -Infinity;
  for (const { value } of known) {
    low = Math.min(low, value);
    high = Math.max(high, value);
  }
  const [boxWidth, boxHeight] = [90, 18];
  const step = boxWidth / Math.max(1, values.length - 1);
  const y = (value: number): number =>
    high === low ? boxHeight / 2 : boxHeight - 1 - ((value - low) / (high - low)) * (boxHeight - 2);
  const points = known
    .map((point) => `${Math.round(point.at * step)},${Math.round(y(point.value))}`)
    .join(' ');
  // Size and stroke come from style.css (.spark).
  return `<svg class="spark" viewBox="0 0 ${boxWidth} ${boxHeight}" preserveAspectRatio="none"><polyline points="${points}"/></svg>`;
}

/** The change over the window, for sorting the growth column: last known size minus first. */
function growth(values: readonly (number | undefined)[]): number {
  const known = values.filter((value): value is number => value !== undefined);
  return known.length < 2 ? 0 : (known[known.length - 1] ?? 0) - (known[0] ?? 0);
}

function quotaCell(row: RepoRow): string {
  if (row.quota === undefined) return cell('', { sort: -1 });
  const { usedBytes, limitBytes } = row.quota;
  const share = limitBytes > 0 ? usedBytes / limitBytes : 1;
  return cell(`${bytes(usedBytes)} of ${bytes(limitBytes)} (${Math.round(share * 100)} %)`, {
    sort: share,
    className: share >= 0.9 ? 'warn' : undefined,
  });
}

function scrubCell(row: RepoRow, nowMs: number): string {
  const scrub = row.scrub;
  if (scrub === undefined) return cell('');
  const problems = [
    scrub.corrupt > 0 ? `${scrub.corrupt} corrupt` : '',
    scrub.unreadable > 0 ? `${scrub.unreadable} unreadable` : '',
  ].filter((text) => text !== '');
  if (problems.length > 0)
    return cell(problems.join(', '), { sort: scrub.corrupt + scrub.unreadable, className: 'warn' });
  if (scrub.lastPass === undefined)
    return cell('pending', { sort: -1, title: 'not checked whole since start' });
  const ago = Math.max(0, Math.round((nowMs - Date.parse(scrub.lastPass)) / 1000));
  return cell(`ok, ${age(ago)} ago`, { sort: 0, title: `last checked whole ${isoMinute(scrub.lastPass)}` });
}

function renderRow(row: RepoRow, nowMs: number, withScrub: boolean): string {
  const counts = Object.entries(row.objects);
  const objects = counts.reduce((sum, [, count]) => sum + count, 0);
  const history = row.sizeHistory;
  return [
    `<tr data-status="${row.status}">`,
    cell(row.repo),
    cell(row.owner ?? ''),
    cell(bytes(row.bytes), { sort: row.bytes }),
    cell('', { sort: growth(history), className: 'growth', markup: sparkline(history) }),
    cell(String(objects), {
      sort: objects,
      title: counts.map(([type, count]) => `${type} ${count}`).join(', '),
    }),
    cell(String(row.objects.snapshots), { sort: row.objects.snapshots }),
    cell(row.newestSnapshot === undefined ? 'never' : isoMinute(row.newestSnapshot), {
      sort: row.newestSnapshot ?? '',
    }),
    cell(age(row.ageSeconds), { sort: row.ageSeconds ?? Number.MAX_SAFE_INTEGER }),
    cell(row.status, { className: `status ${row.status}` }),
    quotaCell(row),
    cell(row.trashBytes === 0 ? '' : bytes(row.trashBytes), { sort: row.trashBytes }),
    withScrub ? scrubCell(row, nowMs) : '',
    cell(row.refusedChanges24h === 0 ? '' : String(row.refusedChanges24h), {
      sort: row.refusedChanges24h,
      className: row.refusedChanges24h > 0 ? 'warn' : undefined,
    }),
    '</tr>',
  ].join('');
}

function headings(withScrub: boolean): [string, 'text' | 'number'][] {
  return [
    ['Repository', 'text'],
    ['Owner', 'text'],
    ['Size', 'number'],
    ['30 days', 'number'],
    ['Objects', 'number'],
    ['Snapshots', 'number'],
    ['Newest snapshot', 'text'],
    ['Age', 'number'],
    ['Status', 'text'],
    ['Quota', 'number'],
    ['Trash', 'number'],
    ...(withScrub ? [['Scrub', 'number'] as [string, 'number']] : []),
    ['Refused (24 h)', 'number'],
  ];
}

/** The whole page: a summary line and the table, every name escaped. */
export function renderPage(rows: readonly RepoRow[], user: string | undefined, now = new Date()): string {
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(row.status, (counts.get(row.status) ?? 0) + 1);
  const summary = ['fresh', 'stale', 'never', 'empty']
    .filter((status) => (counts.get(status) ?? 0) > 0)
    .map((status) => `${counts.get(status) ?? 0} ${status}`)
    .join(', ');
  const withScrub = rows.some((row) => row.scrub !== undefined);
  const head = headings(withScrub)
    .map(
      ([title, kind]) =>
        `<th scope="col" data-kind="${kind}"><button type="button">${escapeHtml(title)}</button></th>`,
    )
    .join('');
  const nowMs = now.getTime();
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>Ratchet: repositories</title>',
    `<link rel="stylesheet" href="${uiPath}style.css">`,
    `<link rel="icon" href="${uiPath}icon.svg" type="image/svg+xml">`,
    `<script src="${uiPath}app.js" defer></script>`,
    '</head><body>',
    '<header><h1>Repositories</h1>',
    `<p id="summary">${rows.length} ${rows.length === 1 ? 'repository' : 'repositories'}${summary === '' ? '' : `: ${escapeHtml(summary)}`}`,
    ` · ${escapeHtml(now.toISOString().replace(/\.\d+Z$/, 'Z'))}${user === undefined ? '' : ` · ${escapeHtml(user)}`}</p>`,
    '<p><label>Filter <input id="filter" type="search" autocomplete="off"></label></p></header>',
    `<main><table id="repos"${withScrub ? ' class="with-scrub"' : ''}><thead><tr>${head}</tr></thead><tbody>`,
    ...rows.map((row) => renderRow(row, nowMs, withScrub)),
    '</tbody></table></main></body></html>',
    '',
  ].join('\n');
}
