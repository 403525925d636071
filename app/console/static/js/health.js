// Sensor health: every sensor with an open sensor_fault warning (silent, stuck, out of range).
import { getJson } from './api.js';
import { h } from './dom.js';
import { t, placeName, formatTime } from './i18n.js';
import { levelChip } from './levels.js';
import { state, emit, subscribe, setHealth, mayRead } from './state.js';

const REFRESH_MS = 60_000;
let onError = () => {};
let timer = null;

const view = () => document.getElementById('health-view');

/** Read the faults again (the map's sensor colours follow); quiet for a key that may not read them. */
export async function refreshHealth() {
  if (!mayRead()) return;
  try {
    setHealth(await getJson('/v1/sensor-health'));
    emit('health');
  } catch (err) {
    onError(err);
  }
}

function render() {
  const faults = [...state.health.values()];
  const area = (id) => placeName(state.areaById.get(id), id);
  const table = faults.length
    ? h('table', {},
      h('thead', {}, h('tr', {}, ['health.sensor', 'health.kind', 'health.area', 'health.fault', 'health.since', 'health.level', 'health.warning']
        .map((k) => h('th', { scope: 'col' }, t(k))))),
      h('tbody', {}, faults.map((f) => h('tr', { 'data-testid': 'health-row', 'data-sensor-id': f.sensor_id, 'data-fault': f.fault },
        h('td', {}, `${f.name || f.sensor_id} (${f.sensor_id})`), h('td', {}, f.kind), h('td', {}, area(f.area)),
        h('td', {}, t(`fault.${f.fault}`)), h('td', {}, formatTime(f.since, { date: true })), h('td', {}, levelChip(f.level)),
        h('td', {}, h('button', { type: 'button', 'data-testid': 'health-open-warning', onclick: () => emit('open-warning', f.warning_id) }, t('health.open')))))))
    : h('p', {}, t('health.none'));
  view().replaceChildren(h('h2', {}, t('health.title')), table);
}

export function showHealth() {
  render();
  refreshHealth();
}

export function initHealth({ onError: reportError }) {
  onError = reportError;
  subscribe('health', () => {
    if (!view().hidden) render();
  });
  subscribe('lang', () => {
    if (!view().hidden) render();
  });
  subscribe('session', () => {
    clearInterval(timer);
    timer = setInterval(refreshHealth, REFRESH_MS);
  });
}
