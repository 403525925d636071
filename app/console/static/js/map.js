// The city drawn from GET /v1/areas in SVG (no tiles): areas shaded by their highest open level,
// sensors as points coloured by health; an area clicked shows its risk and warnings.
import { getJson } from './api.js';
import { onceAFrame } from './coalesce.js';
import { h, s, byTestId, fill } from './dom.js';
import { t, term, placeName, formatTime } from './i18n.js';
import { LEVELS, highest, isOpen, levelChip } from './levels.js';
import { state, subscribe, emit, areaAndChildren } from './state.js';

const WIDTH = 1000;
const PAD = 16;
let onError = () => {};
let selectedArea = null;

function rings(geometry) {
  if (geometry.type === 'Polygon') return geometry.coordinates;
  if (geometry.type === 'MultiPolygon') return geometry.coordinates.flat();
  return [];
}

/**
 * An equirectangular projection fitted to the areas: longitude scaled by cos(mean latitude),
 * so shapes keep their proportions at the city's latitude; y grows southwards.
 */
export function projection(features) {
  const points = features.flatMap((f) => rings(f.geometry).flat());
  const meanLat = points.reduce((sum, [, lat]) => sum + lat, 0) / points.length;
  const k = Math.cos((meanLat * Math.PI) / 180);
  const xs = points.map(([lon]) => lon * k);
  const ys = points.map(([, lat]) => -lat);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const unit = (WIDTH - 2 * PAD) / Math.max(maxX - minX, 1e-9);
  const height = (maxY - minY) * unit + 2 * PAD;
  return {
    width: WIDTH,
    height,
    point: ([lon, lat]) => [PAD + (lon * k - minX) * unit, PAD + (-lat - minY) * unit],
  };
}

function pathData(geometry, project) {
  return rings(geometry)
    .map((ring) => ring.map((p, i) => `${i ? 'L' : 'M'}${project(p).map((v) => v.toFixed(1)).join(',')}`).join('') + 'Z')
    .join('');
}

function centre(geometry, project) {
  const outer = rings(geometry)[0] ?? [];
  const pts = outer.slice(0, -1).map(project);
  const n = Math.max(pts.length, 1);
  return [pts.reduce((a, p) => a + p[0], 0) / n, pts.reduce((a, p) => a + p[1], 0) / n];
}

/** The highest open level per area (a district's includes its grids'); drills are left off the map. */
export function levelsByArea() {
  const byArea = new Map();
  for (const w of state.warnings.values()) {
    if (!isOpen(w) || w.exercise) continue;
    byArea.set(w.area, highest([byArea.get(w.area), w.level].filter(Boolean)));
  }
  const result = new Map();
  for (const props of state.areaById.values()) {
    const levels = [...areaAndChildren(props.id)].map((id) => byArea.get(id)).filter(Boolean);
    result.set(props.id, highest(levels) ?? 'none');
  }
  return result;
}

function areaPath(feature, project, level) {
  const props = feature.properties;
  const name = placeName(props);
  const label = `${name}: ${level === 'none' ? t('map.none') : t(`level.${level}`)}`;
  return s('path', {
    class: `map-area ${props.level === 'district' ? 'district' : 'grid'}${selectedArea === props.id ? ' selected' : ''}`,
    'data-testid': 'map-area', 'data-area-id': props.id, 'data-scope': props.level, 'data-level': level, d: pathData(feature.geometry, project),
    tabindex: '0', role: 'button', 'aria-label': label,
    onclick: () => openArea(props.id),
    onkeydown: (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        openArea(props.id);
      }
    },
  }, s('title', {}, label));
}

function sensorDot(sensor, project) {
  const fault = state.health.get(sensor.id)?.fault;
  const [cx, cy] = project([sensor.lon, sensor.lat]);
  const words = `${sensor.name || sensor.id}: ${fault ? `${t('map.sensor.fault')} (${t(`fault.${fault}`)})` : t('map.sensor.ok')}`;
  return s('circle', {
    class: 'map-sensor', 'data-testid': 'map-sensor', 'data-sensor-id': sensor.id, 'data-health': fault ?? 'ok',
    cx: cx.toFixed(1), cy: cy.toFixed(1), r: fault ? 7 : 5,
  }, s('title', {}, words));
}

export function renderMap() {
  const holder = document.querySelector('.map-holder');
  if (!state.areas.length) return;
  const focused = document.activeElement?.dataset?.areaId;
  const { width, height, point } = projection(state.areas);
  const levels = levelsByArea();
  const districts = state.areas.filter((f) => f.properties.level === 'district');
  const grids = state.areas.filter((f) => f.properties.level !== 'district');
  const labels = [];
  for (const f of grids) {
    const level = levels.get(f.properties.id);
    if (level === 'none') continue;
    const [x, y] = centre(f.geometry, point);
    labels.push(s('text', { class: 'map-label', x, y, 'text-anchor': 'middle' }, t(`level.${level}`)));
  }
  for (const f of districts) {
    const [x, y] = centre(f.geometry, point);
    labels.push(s('text', { class: 'map-district-label', x, y: y + 16, 'text-anchor': 'middle' }, placeName(f.properties)));
  }
  const svg = s('svg', { 'data-testid': 'map', viewBox: `0 0 ${width} ${height.toFixed(0)}`, role: 'group', 'aria-label': t('map.title') },
    // Grids first, so they take the clicks; districts over them as outlines, clicked on their edge.
    s('g', {}, grids.map((f) => areaPath(f, point, levels.get(f.properties.id)))),
    s('g', {}, districts.map((f) => areaPath(f, point, levels.get(f.properties.id)))),
    s('g', {}, state.sensors.map((sensor) => sensorDot(sensor, point))),
    s('g', {}, labels));
  holder.replaceChildren(svg);
  if (focused) svg.querySelector(`[data-area-id="${CSS.escape(focused)}"]`)?.focus();
}

function renderLegend() {
  const legend = document.querySelector('.map-legend');
  legend.replaceChildren(h('span', {}, `${t('map.legend')}:`),
    ...LEVELS.map((level) => h('span', { class: 'legend-item' }, levelChip(level))),
    h('span', { class: 'legend-item' }, h('span', { class: 'legend-swatch none' }), t('map.none')),
    h('span', { class: 'legend-item' }, h('span', { class: 'legend-dot ok' }), t('map.sensor.ok')),
    h('span', { class: 'legend-item' }, h('span', { class: 'legend-dot fault' }), t('map.sensor.fault')));
}

function areaPanel() {
  return byTestId('area-panel');
}

export function closeArea({ restoreFocus = true } = {}) {
  const previous = selectedArea;
  selectedArea = null;
  areaPanel().hidden = true;
  areaPanel().replaceChildren();
  renderMap();
  if (previous && restoreFocus) document.querySelector(`[data-testid="map-area"][data-area-id="${CSS.escape(previous)}"]`)?.focus();
}

/** The area's sensors (a district's include its grids') with their health: the map's points, in words. */
function sensorsSection(areaId) {
  const inside = areaAndChildren(areaId);
  const sensors = state.sensors.filter((x) => inside.has(x.area));
  if (!sensors.length) return null;
  return h('details', { class: 'area-sensors' },
    h('summary', {}, t('area.sensors', { n: sensors.length })),
    h('ul', { class: 'plain-list' }, sensors.map((x) => {
      const fault = state.health.get(x.id)?.fault;
      return h('li', { 'data-sensor-id': x.id, 'data-health': fault ?? 'ok' },
        `${x.name || x.id}: ${fault ? `${t('map.sensor.fault')} (${t(`fault.${fault}`)})` : t('map.sensor.ok')}`);
    })));
}

function renderRisk(risk) {
  const props = risk.area;
  const counts = Object.entries(risk.report_counts ?? {});
  fill(areaPanel(),
    h('div', { class: 'panel-head' }, h('h2', { tabindex: '-1' }, placeName(props)),
      h('button', { type: 'button', 'data-testid': 'area-close', onclick: () => closeArea() }, t('area.close'))),
    h('dl', { class: 'facts' },
      h('dt', {}, t('area.population')), h('dd', {}, String(props.population ?? '—')),
      h('dt', {}, t('area.highest')), h('dd', { 'data-testid': 'area-level' }, risk.highest_level ? levelChip(risk.highest_level) : t('map.none')),
      h('dt', {}, t('area.signals', { since: formatTime(risk.reports_since) })), h('dd', {}, String(risk.recent_signals.length)),
      h('dt', {}, t('area.reports', { since: formatTime(risk.reports_since) })),
      h('dd', {}, counts.length ? counts.map(([k, n]) => `${k}: ${n}`).join(', ') : '0')),
    props.parent ? h('p', {}, h('button', { type: 'button', 'data-testid': 'area-parent', onclick: () => openArea(props.parent) },
      t('area.parent', { name: placeName(state.areaById.get(props.parent), props.parent) }))) : null,
    sensorsSection(props.id),
    h('h3', {}, t('area.warnings')),
    risk.open_warnings.length
      ? h('ul', { class: 'plain-list' }, risk.open_warnings.map((w) => h('li', {},
        h('button', { type: 'button', class: 'area-warning', 'data-testid': 'area-warning', 'data-warning-id': w.id, onclick: () => emit('open-warning', w.id) },
          levelChip(w.level), ` ${term('hazard', w.hazard)} · ${placeName(state.areaById.get(w.area), w.area)} · ${t(`status.${w.status}`)}`))))
      : h('p', { class: 'rec-meta' }, t('area.nowarnings')));
  areaPanel().querySelector('h2').focus();
}

export async function openArea(areaId) {
  selectedArea = areaId;
  const panel = areaPanel();
  panel.dataset.areaId = areaId;
  panel.hidden = false;
  panel.replaceChildren(h('p', {}, t('area.loading')));
  renderMap();
  try {
    const risk = await getJson(`/v1/areas/${encodeURIComponent(areaId)}/risk`);
    if (selectedArea === areaId) renderRisk(risk);
  } catch (err) {
    panel.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, err.message));
    onError(err);
  }
}

export function initMap({ onError: reportError }) {
  onError = reportError;
  const redraw = () => {
    renderMap();
    renderLegend();
  };
  subscribe('areas', redraw);
  subscribe('warnings', onceAFrame(renderMap)); // once a frame during a burst of stream events
  subscribe('health', renderMap);
  subscribe('lang', () => {
    redraw();
    if (selectedArea) openArea(selectedArea);
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !event.defaultPrevented && selectedArea) closeArea();
  });
  renderLegend();
}
