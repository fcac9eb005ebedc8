/** A hand-drawn SVG chart of the results: one group of bars per figure, one bar per server. */
import { formatNumber } from './report.ts';
import type { Results } from './report.ts';

const palette: Record<string, string> = {
  ratchet: '#d9480f',
  rclone: '#1971c2',
  nginx: '#2f9e44',
  'rest-server': '#7048e8',
};
const fallbackColours = ['#495057', '#c2255c', '#0c8599'];

const width = 980;
const labelWidth = 250;
const barLeft = labelWidth + 10;
const barWidth = 560;
const barHeight = 13;
const barGap = 3;
const groupGap = 14;
const top = 92;

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function colour(name: string, index: number): string {
  return palette[name] ?? fallbackColours[index % fallbackColours.length] ?? '#000';
}

/** Renders the results as a standalone SVG document. */
export function renderChart(results: Results): string {
  const names = results.servers.map((s) => s.name);
  const groupHeight = names.length * (barHeight + barGap) - barGap;
  const height = top + results.figures.length * (groupHeight + groupGap) + 40;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="17" font-weight="bold">${escapeXml(
      `Ratchet and its peers: ${results.mode} run, ${results.roundsCompleted} round(s), ${results.createdAt.slice(0, 10)}`,
    )}</text>`,
    `<text x="16" y="46" fill="#495057">${escapeXml(
      `${results.machine.cpus} cores (${results.machine.cpuModel}), ${results.machine.memoryGiB} GiB, node ${results.machine.node}; loopback; client and servers share the cores.`,
    )}</text>`,
    `<text x="16" y="64" fill="#495057">${escapeXml(
      'Bar: median; whisker: min–max over rounds. Each figure is scaled to its largest value; the label says whether higher or lower is better.',
    )}</text>`,
  );
  names.forEach((name, i) => {
    const x = 16 + i * 150;
    parts.push(
      `<rect x="${x}" y="${top - 20}" width="12" height="12" fill="${colour(name, i)}"/>`,
      `<text x="${x + 18}" y="${top - 10}">${escapeXml(name)}</text>`,
    );
  });

  let y = top;
  for (const figure of results.figures) {
    const cells = names.map((n) => figure.byServer[n]);
    const scale = Math.max(...cells.map((c) => c?.summary?.max ?? 0), 0);
    const mid = y + groupHeight / 2;
    parts.push(
      `<text x="${labelWidth}" y="${mid - 2}" text-anchor="end" font-weight="bold">${escapeXml(figure.label)}</text>`,
      `<text x="${labelWidth}" y="${mid + 12}" text-anchor="end" fill="#495057">${escapeXml(
        `${figure.unit}, ${figure.better} is better`,
      )}</text>`,
    );
    names.forEach((name, i) => {
      const cell = figure.byServer[name];
      const by = y + i * (barHeight + barGap);
      const s = cell?.summary;
      if (s === undefined || scale <= 0) {
        const why = cell && cell.errors.length > 0 ? 'error' : 'not measured';
        parts.push(
          `<text x="${barLeft + 4}" y="${by + barHeight - 2}" fill="#868e96">${name}: ${why}</text>`,
        );
        return;
      }
      const w = Math.max(1, (s.median / scale) * barWidth);
      const x0 = barLeft + (s.min / scale) * barWidth;
      const x1 = barLeft + (s.max / scale) * barWidth;
      const cy = by + barHeight / 2;
      parts.push(
        `<rect x="${barLeft}" y="${by}" width="${w.toFixed(1)}" height="${barHeight}" fill="${colour(name, i)}" fill-opacity="0.85"/>`,
      );
      if (s.n > 1 && s.max > s.min) {
        parts.push(
          `<path d="M${x0.toFixed(1)} ${cy}H${x1.toFixed(1)}M${x0.toFixed(1)} ${by + 2}V${by + barHeight - 2}M${x1.toFixed(1)} ${by + 2}V${by + barHeight - 2}" stroke="#212529" stroke-width="1.2" fill="none"/>`,
        );
      }
      const textX = Math.max(barLeft + w, x1) + 6;
      parts.push(
        `<text x="${textX.toFixed(1)}" y="${by + barHeight - 2}">${escapeXml(`${formatNumber(s.median)} ${figure.unit}`)}</text>`,
      );
    });
    y += groupHeight + groupGap;
    parts.push(
      `<line x1="16" x2="${width - 16}" y1="${y - groupGap / 2}" y2="${y - groupGap / 2}" stroke="#e9ecef"/>`,
    );
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
