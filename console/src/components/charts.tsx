/**
 * Charts as inline SVG (no chart library: four horizontal bar charts do not need one). Each chart is an
 * image with a title and a text description of its numbers for screen readers; colours come from classes
 * in styles.css (no inline style, which the CSP forbids), and every bar carries its value as text too.
 */
import { useState } from 'preact/hooks';

let nextId = 0;
const ROW_H = 22;
const LABEL_W = 140;
const VALUE_W = 70;
const WIDTH = 560;

function useChartId(): string {
  return useState(() => `chart-${++nextId}`)[0];
}

export interface Bar {
  label: string;
  value: number;
}

export function BarChart(props: { title: string; bars: Bar[]; unit?: string; max?: number; empty?: string }) {
  const id = useChartId();
  const bars = props.bars;
  const max = props.max ?? Math.max(1, ...bars.map((b) => b.value));
  const plotW = WIDTH - LABEL_W - VALUE_W;
  const h = Math.max(1, bars.length) * ROW_H + 8;
  const fmt = (v: number) => `${Number.isInteger(v) ? v : v.toFixed(1)}${props.unit ?? ''}`;
  return (
    <figure class="chart">
      <figcaption id={`${id}-t`}>{props.title}</figcaption>
      {bars.length === 0 ? (
        <p class="empty">{props.empty ?? 'No data yet.'}</p>
      ) : (
        <svg
          role="img"
          aria-labelledby={`${id}-t ${id}-d`}
          viewBox={`0 0 ${WIDTH} ${h}`}
          width="100%"
          preserveAspectRatio="xMinYMin meet"
        >
          <desc id={`${id}-d`}>{bars.map((b) => `${b.label}: ${fmt(b.value)}`).join('; ')}</desc>
          {bars.map((b, i) => {
            const y = 4 + i * ROW_H;
            const w = Math.max(0, Math.min(1, b.value / max)) * plotW;
            return (
              <g key={b.label}>
                <text x={LABEL_W - 6} y={y + ROW_H / 2 + 4} text-anchor="end" class="chart-label">
                  {b.label}
                </text>
                <rect x={LABEL_W} y={y + 3} width={w} height={ROW_H - 6} class="bar s0" rx="2" />
                <text x={LABEL_W + w + 4} y={y + ROW_H / 2 + 4} class="chart-value">
                  {fmt(b.value)}
                </text>
              </g>
            );
          })}
        </svg>
      )}
    </figure>
  );
}

/** Bars split into named parts (e.g. incidents per tenant by severity), with a legend. */
export function StackedBarChart(props: {
  title: string;
  series: string[];
  rows: { label: string; values: number[] }[];
  empty?: string;
}) {
  const id = useChartId();
  const total = (r: { values: number[] }) => r.values.reduce((a, b) => a + b, 0);
  const max = Math.max(1, ...props.rows.map(total));
  const plotW = WIDTH - LABEL_W - VALUE_W;
  const h = Math.max(1, props.rows.length) * ROW_H + 8;
  return (
    <figure class="chart">
      <figcaption id={`${id}-t`}>{props.title}</figcaption>
      <ul class="legend" aria-hidden="true">
        {props.series.map((s, i) => (
          <li key={s}>
            <svg width="12" height="12">
              <rect width="12" height="12" class={`bar s${i}`} />
            </svg>{' '}
            {s}
          </li>
        ))}
      </ul>
      {props.rows.length === 0 ? (
        <p class="empty">{props.empty ?? 'No data yet.'}</p>
      ) : (
        <svg
          role="img"
          aria-labelledby={`${id}-t ${id}-d`}
          viewBox={`0 0 ${WIDTH} ${h}`}
          width="100%"
          preserveAspectRatio="xMinYMin meet"
        >
          <desc id={`${id}-d`}>
            {props.rows
              .map((r) => `${r.label}: ${r.values.map((v, i) => `${props.series[i]} ${v}`).join(', ')}`)
              .join('; ')}
          </desc>
          {props.rows.map((r, i) => {
            const y = 4 + i * ROW_H;
            let x = LABEL_W;
            return (
              <g key={r.label}>
                <text x={LABEL_W - 6} y={y + ROW_H / 2 + 4} text-anchor="end" class="chart-label">
                  {r.label}
                </text>
                {r.values.map((v, j) => {
                  const w = (v / max) * plotW;
                  const rect = <rect key={j} x={x} y={y + 3} width={w} height={ROW_H - 6} class={`bar s${j}`} />;
                  x += w;
                  return rect;
                })}
                <text x={x + 4} y={y + ROW_H / 2 + 4} class="chart-value">
                  {total(r)}
                </text>
              </g>
            );
          })}
        </svg>
      )}
    </figure>
  );
}
