import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One bar of a report's chart: `value` in `unit`, drawn as a horizontal bar. */
export interface ChartBar {
  label: string;
  value: number;
}

export interface BenchReport {
  /** File stem under bench/results/. */
  name: string;
  title: string;
  /** Facts about the run: machine, engine, model shape, date. */
  context: Record<string, string | number>;
  /** Table rows, all with the same keys; the first row's keys are the columns. */
  rows: Array<Record<string, string | number>>;
  chart: { unit: string; bars: ChartBar[] };
  /** Extra lines under the table: targets, ratios, verdicts. */
  notes?: string[];
}

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

function cell(value: string | number): string {
  if (typeof value === 'string') return value;
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(4);
}

export function markdownTable(rows: BenchReport['rows']): string {
  if (rows.length === 0) return '';
  const cols = Object.keys(rows[0]);
  const lines = [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${cols.map((c) => cell(row[c] ?? '')).join(' | ')} |`);
  return lines.join('\n');
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A plain SVG bar chart: readable in any browser or image viewer, no plotting dependency. */
export function svgBarChart(title: string, unit: string, bars: ChartBar[]): string {
  const labelWidth = 260;
  const plotWidth = 440;
  const rowHeight = 26;
  const top = 40;
  const height = top + bars.length * rowHeight + 30;
  const max = Math.max(1e-12, ...bars.map((b) => b.value));
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + plotWidth + 120}" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="24" font-size="16" font-weight="bold">${escapeXml(title)} (${escapeXml(unit)})</text>`,
  ];
  bars.forEach((bar, i) => {
    const y = top + i * rowHeight;
    const w = Math.max(1, (bar.value / max) * plotWidth);
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 17}" text-anchor="end">${escapeXml(bar.label)}</text>`,
      `<rect x="${labelWidth}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="#4a78c2"/>`,
      `<text x="${labelWidth + w + 6}" y="${y + 17}">${escapeXml(cell(bar.value))}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Writes <name>.json, <name>.md and <name>.svg under bench/results/ and returns their paths. */
export function writeBenchReport(report: BenchReport, dir = RESULTS_DIR): string[] {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, report.name);
  writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
  const context = Object.entries(report.context).map(([k, v]) => `- ${k}: ${v}`);
  const md = [
    `# ${report.title}`,
    '',
    ...context,
    '',
    markdownTable(report.rows),
    '',
    ...(report.notes ?? []).map((n) => `- ${n}`),
    '',
    `![chart](${report.name}.svg)`,
    '',
  ].join('\n');
  writeFileSync(`${base}.md`, md);
  writeFileSync(`${base}.svg`, svgBarChart(report.title, report.chart.unit, report.chart.bars));
  return [`${base}.json`, `${base}.md`, `${base}.svg`];
}
