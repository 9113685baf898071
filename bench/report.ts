import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasHugePagesTunable, hugePagesNotice, namesHugePagesTunable } from '../server/huge-pages.js';

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
  /** Further tables after the notes, each under its own heading. */
  tables?: { title: string; rows: BenchReport['rows'] }[];
  /** Further charts, written as <name>-<plot name>.svg and shown in the Markdown. */
  plots?: { name: string; svg: string }[];
}

/** One line of a line chart: points (x, y) drawn in x order. */
export interface LineSeries {
  label: string;
  points: [number, number][];
}

/**
 * Facts every report records about the run's machine: when, which CPU, how busy it was, and
 * whether this process's large buffers get huge pages as `npm start`'s do (server/huge-pages.ts).
 */
export function machineContext(): Record<string, string | number> {
  return {
    date: new Date().toISOString().slice(0, 10),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    'load average': loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    'huge pages for malloc': hugePagesContext(),
  };
}

/** Whether malloc's mappings get huge pages in this process, and why (server/huge-pages.ts). */
function hugePagesContext(): string {
  const tunables = process.env.GLIBC_TUNABLES;
  if (hasHugePagesTunable(process.env)) return `on (GLIBC_TUNABLES=${tunables})`;
  if (namesHugePagesTunable(process.env)) return `off, as GLIBC_TUNABLES=${tunables} asks`;
  if (hugePagesNotice())
    return 'off: 4 KiB pages (THP madvise mode, GLIBC_TUNABLES without glibc.malloc.hugetlb=1; npm start sets it)';
  return 'as the system gives them (no madvise-mode THP to ask for)';
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

const SERIES_COLOURS = [
  '#4a78c2',
  '#d4622a',
  '#3a9a4a',
  '#9a4ab0',
  '#b0902a',
  '#2aa0b0',
  '#b02a5a',
  '#555555',
];

/** A nice axis maximum: 1, 2 or 5 times a power of ten at or above `value`. */
function niceCeil(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/**
 * A plain SVG line chart with axes, five ticks each and a legend: latency CDFs, throughput or
 * SLO attainment against load. The y axis runs from 0 to `yMax` (or the data's nice maximum).
 */
export function svgLineChart(
  title: string,
  axes: { x: string; y: string; yMax?: number },
  series: LineSeries[],
): string {
  const left = 70;
  const top = 40;
  const plotWidth = 560;
  const plotHeight = 300;
  const legendTop = top + plotHeight + 50;
  const height = legendTop + series.length * 18 + 10;
  const all = series.flatMap((s) => s.points);
  const xMin = Math.min(0, ...all.map(([x]) => x));
  const xMax = niceCeil(Math.max(...all.map(([x]) => x), 0));
  const yMax = axes.yMax ?? niceCeil(Math.max(...all.map(([, y]) => y), 0));
  const px = (x: number) => left + ((x - xMin) / (xMax - xMin || 1)) * plotWidth;
  const py = (y: number) => top + plotHeight - (y / (yMax || 1)) * plotHeight;
  const tick = (v: number) => escapeXml(String(Number(v.toPrecision(4))));
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + plotWidth + 40}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="24" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${top + plotHeight}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="black"/>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const x = xMin + ((xMax - xMin) * i) / 5;
    const y = (yMax * i) / 5;
    parts.push(
      `<text x="${px(x).toFixed(1)}" y="${top + plotHeight + 16}" text-anchor="middle">${tick(x)}</text>`,
      `<text x="${left - 6}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end">${tick(y)}</text>`,
      `<line x1="${left}" y1="${py(y).toFixed(1)}" x2="${left + plotWidth}" y2="${py(y).toFixed(1)}" stroke="#e4e4e4"/>`,
    );
  }
  parts.push(
    `<text x="${left + plotWidth / 2}" y="${top + plotHeight + 36}" text-anchor="middle">${escapeXml(axes.x)}</text>`,
    `<text x="14" y="${top + plotHeight / 2}" text-anchor="middle" transform="rotate(-90 14 ${top + plotHeight / 2})">${escapeXml(axes.y)}</text>`,
  );
  series.forEach((s, i) => {
    const colour = SERIES_COLOURS[i % SERIES_COLOURS.length];
    const points = [...s.points].sort((a, b) => a[0] - b[0]);
    const path = points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${path}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    if (points.length <= 20)
      for (const [x, y] of points)
        parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${colour}"/>`);
    const ly = legendTop + i * 18;
    parts.push(
      `<line x1="${left}" y1="${ly - 4}" x2="${left + 24}" y2="${ly - 4}" stroke="${colour}" stroke-width="3"/>`,
      `<text x="${left + 30}" y="${ly}">${escapeXml(s.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Writes <name>.json, <name>.md and <name>.svg under bench/results/ and returns their paths. */
export function writeBenchReport(report: BenchReport, dir = RESULTS_DIR): string[] {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, report.name);
  const { plots = [], ...data } = report;
  writeFileSync(`${base}.json`, `${JSON.stringify(data, null, 2)}\n`);
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
    ...(report.tables ?? []).flatMap((t) => [`## ${t.title}`, '', markdownTable(t.rows), '']),
    `![chart](${report.name}.svg)`,
    '',
    ...plots.flatMap((p) => [`![${p.name}](${report.name}-${p.name}.svg)`, '']),
  ].join('\n');
  writeFileSync(`${base}.md`, md);
  writeFileSync(`${base}.svg`, svgBarChart(report.title, report.chart.unit, report.chart.bars));
  const files = [`${base}.json`, `${base}.md`, `${base}.svg`];
  for (const plot of plots) {
    writeFileSync(`${base}-${plot.name}.svg`, plot.svg);
    files.push(`${base}-${plot.name}.svg`);
  }
  return files;
}
