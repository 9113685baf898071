import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Exposition, parsePrometheusText } from '../server/prometheus-text.js';
import { startTinyServer, type TinyServer } from '../server/tiny-server.js';

interface Target {
  refId: string;
  expr: string;
}
interface Panel {
  id: number;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets: Target[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; definition?: string }[] };
}

const dashboard = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../deploy/grafana/loom-dashboard.json'), 'utf8'),
) as Dashboard;
const expressions = [
  ...dashboard.panels.flatMap((panel) => panel.targets.map((t) => ({ where: panel.title, expr: t.expr }))),
  ...dashboard.templating.list.flatMap((v) =>
    v.definition ? [{ where: `$${v.name}`, expr: v.definition }] : [],
  ),
];

/** Metric names an expression selects (Loom's and vLLM's families) with the label names its matchers use. */
function selectors(expr: string): { metric: string; labels: string[] }[] {
  const found: { metric: string; labels: string[] }[] = [];
  for (const match of expr.matchAll(/\b((?:vllm:|loom_)[a-zA-Z0-9_:]*)(\{([^}]*)\})?/g)) {
    const labels = [...(match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map(
      (m) => m[1],
    );
    found.push({ metric: match[1], labels });
  }
  return found;
}

/** `by (…)` groupings must name labels the selected metric has. */
function groupings(expr: string): string[] {
  return [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]
      .split(',')
      .map((l) => l.trim())
      .filter((l) => l !== '' && l !== 'le'),
  );
}

let server: TinyServer;
let metrics: Exposition;

beforeAll(async () => {
  server = await startTinyServer('onnx');
  // One finished request, so every request-level series has samples.
  await server.client.completions.create({ model: 'tiny-r4', prompt: [5, 6, 7], max_tokens: 3 } as never);
  const response = await fetch(server.baseURL.replace(/\/v1$/, '/metrics'));
  metrics = parsePrometheusText(await response.text());
});

afterAll(async () => {
  await server?.close();
});

describe('deploy/grafana/loom-dashboard.json', () => {
  it('is a Grafana dashboard: unique panel ids, a query per target, a datasource and model variable', () => {
    expect(dashboard.uid).toBe('loom-serving');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      expect(panel.gridPos.w, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets) expect(target.expr, panel.title).not.toBe('');
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'model_name']);
  });

  it.each(expressions)('queries only series /metrics has, with labels they carry ($where)', ({ expr }) => {
    const used = selectors(expr);
    expect(used.length, expr).toBeGreaterThan(0);
    for (const { metric, labels } of used) {
      const samples = metrics.samples.filter((s) => s.name === metric);
      expect(samples.length, `${metric} in /metrics`).toBeGreaterThan(0);
      const carried = new Set(samples.flatMap((s) => Object.keys(s.labels)));
      for (const label of [...labels, ...groupings(expr)])
        expect(carried, `${metric} has label ${label}`).toContain(label);
    }
  });
});
