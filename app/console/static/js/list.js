// The warning list (left): filters, one keyboard-reachable row per warning, open ones first.
import { onceAFrame } from './coalesce.js';
import { h, byTestId } from './dom.js';
import { t, term, placeName, formatAge } from './i18n.js';
import { LEVELS, levelChip, levelRank, isOpen, OPEN_STATUSES } from './levels.js';
import { state, subscribe, areaAndChildren } from './state.js';

let onOpen = () => {};
const STATUS_CHOICES = ['', 'open', ...OPEN_STATUSES, 'resolved'];

export function areaLabel(areaId) {
  if (areaId === 'city' && !state.areaById.has(areaId)) return t('area.city');
  return placeName(state.areaById.get(areaId), areaId);
}

function hazards() {
  const seen = new Set(['flood', 'waterlogging', 'gas_leak', 'fire', 'sensor_fault']);
  for (const w of state.warnings.values()) seen.add(w.hazard);
  return [...seen].sort((a, b) => term('hazard', a).localeCompare(term('hazard', b)));
}

function fillSelect(select, choices, current) {
  select.replaceChildren(...choices.map(([value, label]) => h('option', { value }, label)));
  select.value = choices.some(([value]) => value === current) ? current : '';
}

/** The filters' choices in the chosen language; the hazards and areas the data has. */
let filterSignature = '';

function renderFilters() {
  const f = state.filters;
  const found = hazards();
  const signature = [document.documentElement.lang, state.areas.length, ...found].join('|');
  if (signature === filterSignature) return; // rebuilt only when the choices change: an open select stays open
  filterSignature = signature;
  fillSelect(byTestId('filter-level'), [['', t('filter.any')],
    ...LEVELS.map((l) => [l, t('filter.minlevel', { level: t(`level.${l}`) })])], f.level);
  fillSelect(byTestId('filter-hazard'), [['', t('filter.any')], ...found.map((z) => [z, term('hazard', z)])],
    f.hazard);
  const areas = [['', t('filter.any')]];
  const districts = state.areas.filter((a) => a.properties.level !== 'grid');
  for (const d of districts) {
    areas.push([d.properties.id, placeName(d.properties)]);
    for (const g of state.areas.filter((a) => a.properties.parent === d.properties.id)) {
      areas.push([g.properties.id, `\u2003${placeName(g.properties)}`]);
    }
  }
  fillSelect(byTestId('filter-area'), areas, f.area);
  fillSelect(byTestId('filter-status'), STATUS_CHOICES.map((s) => [s,
    s === '' ? t('filter.any') : s === 'open' ? t('filter.open') : t(`status.${s}`)]), f.status);
}

function matches(w) {
  const f = state.filters;
  if (f.level && levelRank(w.level) < levelRank(f.level)) return false;
  if (f.hazard && w.hazard !== f.hazard) return false;
  if (f.area && !areaAndChildren(f.area).has(w.area)) return false;
  if (f.status === 'open') return isOpen(w);
  if (f.status && w.status !== f.status) return false;
  return true;
}

/** Open before resolved, worst level first, then the latest change first. */
function byUrgency(a, b) {
  return (isOpen(b) - isOpen(a)) || (levelRank(b.level) - levelRank(a.level))
    || (Date.parse(b.updated_at) - Date.parse(a.updated_at));
}

function row(w, now) {
  const flash = state.flash.get(w.id);
  return h('li', {},
    h('button', {
      type: 'button', class: `warning-row status-${w.status}`, 'data-testid': 'warning-row',
      'data-warning-id': w.id, 'data-level': w.level, 'data-status': w.status, 'data-flash': flash,
      onclick: () => onOpen(w.id),
    },
    levelChip(w.level, { 'data-testid': 'row-level' }),
    h('span', { class: 'row-main' },
      h('span', { class: 'row-line' },
        h('span', { class: 'row-hazard', 'data-testid': 'row-hazard' }, term('hazard', w.hazard)),
        w.exercise ? h('span', { class: 'drill-mark', 'data-testid': 'row-drill' }, t('drill')) : null,
        flash ? h('span', { class: `flash-mark flash-${flash}` }, t(`flash.${flash}`)) : null),
      h('span', { class: 'row-area', 'data-testid': 'row-area' }, areaLabel(w.area))),
    h('span', { class: 'row-meta' },
      h('span', { class: `row-status status-text-${w.status}`, 'data-testid': 'row-status' }, t(`status.${w.status}`)),
      h('span', { class: 'row-certainty', 'data-testid': 'row-certainty' }, term('certainty', w.certainty)),
      h('time', { class: 'row-age', 'data-testid': 'row-age', datetime: w.created_at }, formatAge(w.created_at, now)))));
}

export function renderList() {
  const list = byTestId('warning-list');
  const focused = document.activeElement?.closest?.('[data-testid="warning-row"]')?.dataset.warningId;
  const all = [...state.warnings.values()];
  const shown = all.filter(matches).sort(byUrgency);
  const now = Date.now();
  list.replaceChildren(...shown.map((w) => row(w, now)));
  if (state.loaded && !shown.length) list.append(h('li', { class: 'list-empty' }, t('list.empty')));
  if (!state.loaded) list.append(h('li', { class: 'list-empty' }, t('list.loading')));
  const count = t('list.count', { shown: shown.length, total: all.length });
  document.querySelector('.list-count').textContent = state.unlisted
    ? `${count} ${t('list.unlisted', { n: state.unlisted })}` : count;
  if (focused) list.querySelector(`[data-warning-id="${CSS.escape(focused)}"]`)?.focus();
}

export function initList({ open }) {
  onOpen = open;
  for (const select of document.querySelectorAll('[data-filter]')) {
    select.addEventListener('change', () => {
      state.filters[select.dataset.filter] = select.value;
      renderList();
    });
  }
  // A burst of stream events (a drill replayed fast) redraws the list once a frame, not once an event.
  subscribe(
    'warnings',
    onceAFrame(() => {
      renderFilters();
      renderList();
    }),
  );
  subscribe('areas', () => {
    renderFilters();
    renderList();
  });
  subscribe('lang', () => {
    renderFilters();
    renderList();
  });
  setInterval(() => {
    for (const el of document.querySelectorAll('[data-testid="row-age"]')) {
      el.textContent = formatAge(el.getAttribute('datetime'));
    }
  }, 30_000);
}
