// An evidence chart: one sensor's stored series around the warning's signals, drawn in SVG, with
// each signal's reading marked and the warning lines it crossed drawn across.
import { getJson } from './api.js';
import { s } from './dom.js';
import { t, formatNumber, formatTime } from './i18n.js';

const W = 600;
const H = 160;
const PAD = { left: 56, right: 12, top: 10, bottom: 24 };
const BEFORE_MS = 2 * 3600_000;
const AFTER_MS = 3600_000;
const WINDOW_MS = 12 * 3600_000;
const LINE_COLOURS = { blue: '#2f7df6', yellow: '#f2c81b', orange: '#f7862a', red: '#e5383b' };

/** The range to show: from two hours before the first signal to an hour after the last (not past now). */
export function chartRange(evidence, now = Date.now()) {
  const times = evidence.map((e) => Date.parse(e.observed_at));
  // Evidence that goes back days would flatten the signal itself: at most the last WINDOW_MS.
  const start = Math.max(Math.min(...times) - BEFORE_MS, Math.max(...times) - WINDOW_MS);
  const end = Math.min(now, Math.max(...times) + AFTER_MS);
  return { start: new Date(start), end: new Date(Math.max(end, start + 60_000)) };
}

/** Each distinct warning line the evidence crossed, with the level it belongs to. */
function warningLines(evidence) {
  const lines = new Map();
  for (const e of evidence) {
    const value = e.details?.warning_line;
    if (typeof value === 'number' && !lines.has(value)) lines.set(value, e.level);
  }
  return [...lines].map(([value, level]) => ({ value, level }));
}

function scale(domainLo, domainHi, rangeLo, rangeHi) {
  const span = domainHi - domainLo || 1;
  return (v) => rangeLo + ((v - domainLo) / span) * (rangeHi - rangeLo);
}

function draw(svg, { points, evidence, range, unit }) {
  const lines = warningLines(evidence);
  const shown = evidence.filter((e) => Date.parse(e.observed_at) >= range.start.getTime());
  const values = [...points.map((p) => p.value), ...shown.map((e) => e.value), ...lines.map((l) => l.value)];
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;
  lo -= pad;
  hi += pad;
  const x = scale(range.start.getTime(), range.end.getTime(), PAD.left, W - PAD.right);
  const y = scale(lo, hi, H - PAD.bottom, PAD.top);
  const body = [
    s('rect', { x: PAD.left, y: PAD.top, width: W - PAD.left - PAD.right, height: H - PAD.top - PAD.bottom, fill: 'none', stroke: '#2c3b4b' }),
  ];
  for (const v of [lo + pad, (lo + hi) / 2, hi - pad]) {
    body.push(s('text', { class: 'chart-axis', x: PAD.left - 4, y: y(v) + 3, 'text-anchor': 'end' }, `${formatNumber(v, 2)} ${unit}`));
  }
  body.push(s('text', { class: 'chart-axis', x: PAD.left, y: H - 6 }, formatTime(range.start.toISOString())));
  body.push(s('text', { class: 'chart-axis', x: W - PAD.right, y: H - 6, 'text-anchor': 'end' }, formatTime(range.end.toISOString())));
  for (const line of lines) {
    const colour = LINE_COLOURS[line.level] ?? '#ccc';
    body.push(s('line', { class: 'chart-warning-line', 'data-line': line.value, x1: PAD.left, x2: W - PAD.right, y1: y(line.value), y2: y(line.value), stroke: colour }));
    body.push(s('text', { class: 'chart-axis', x: PAD.left + 4, y: y(line.value) - 3, fill: colour },
      t('chart.line', { value: `${formatNumber(line.value)} ${unit}` })));
  }
  if (points.length) {
    const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(Date.parse(p.ts)).toFixed(1)},${y(p.value).toFixed(1)}`).join('');
    body.push(s('path', { class: 'chart-line', d: path }));
  } else {
    body.push(s('text', { class: 'chart-axis', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, t('chart.nodata')));
  }
  for (const e of shown) {
    body.push(s('circle', {
      class: 'chart-signal', 'data-signal': e.observed_at, cx: x(Date.parse(e.observed_at)), cy: y(e.value), r: 4,
      fill: LINE_COLOURS[e.level] ?? '#9fb0c0',
    }, s('title', {}, `${t('chart.signal')} ${formatTime(e.observed_at)}: ${formatNumber(e.value)} ${unit}`)));
  }
  svg.replaceChildren(...body);
}

/**
 * An <svg data-testid="evidence-chart"> for one sensor's evidence; its series is fetched and drawn
 * into it when it comes. onError gets a failed fetch (shown by the caller, never swallowed); range and
 * fetchSeries let a caller that draws the chart again reuse what it fetched.
 */
export function evidenceChart(sensorId, evidence, { label, onError, range = chartRange(evidence), fetchSeries = getJson }) {
  const svg = s('svg', {
    class: 'evidence-chart', 'data-testid': 'evidence-chart', 'data-sensor-id': sensorId, viewBox: `0 0 ${W} ${H}`,
    role: 'img', 'aria-label': t('chart.label', { sensor: label, start: formatTime(range.start.toISOString()), end: formatTime(range.end.toISOString()) }),
  });
  const query = new URLSearchParams({ start: range.start.toISOString(), end: range.end.toISOString(), limit: '5000' });
  fetchSeries(`/v1/sensors/${encodeURIComponent(sensorId)}/series?${query}`)
    .then((series) => draw(svg, { points: series.points, evidence, range, unit: series.unit }))
    .catch((err) => {
      draw(svg, { points: [], evidence, range, unit: '' });
      onError(err);
    });
  return svg;
}
