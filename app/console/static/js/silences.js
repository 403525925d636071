// Silences: set one for an area and/or a hazard for some minutes, see those active or to come, end one.
import { deleteJson, getJson, postJson } from './api.js';
import { h, byTestId } from './dom.js';
import { t, term, placeName, formatTime } from './i18n.js';
import { state, subscribe, canAct } from './state.js';

const HAZARDS = ['flood', 'waterlogging', 'gas_leak', 'fire', 'structural_damage', 'public_health',
  'power_outage', 'traffic_accident', 'other', 'sensor_fault'];
let onError = () => {};
let silences = [];
let notice = null; // {text, ok}: the last create or end, said beside the form

const view = () => document.getElementById('silences-view');

function choice(id, label, options) {
  return h('label', { for: id }, label, h('select', { id, 'data-testid': id },
    options.map(([value, text]) => h('option', { value }, text))));
}

function form() {
  if (!canAct()) return h('p', { class: 'rec-meta' }, t('silences.readonly')); // no action for a viewer
  const areas = [['', t('silences.any')], ...state.areas.map((f) => [f.properties.id,
    `${f.properties.level === 'grid' ? '\u2003' : ''}${placeName(f.properties)}`])];
  const hazards = [['', t('silences.any')], ...HAZARDS.map((z) => [z, term('hazard', z)])];
  const message = h('p', { class: `form-message ${notice?.ok ? 'form-ok' : 'form-error'}`, role: 'status' }, notice?.text ?? '');
  return h('form', { class: 'silence-form', 'data-testid': 'silence-form', onsubmit: create },
    h('h2', { class: 'form-message' }, t('silences.new')),
    choice('silence-area', t('silences.area'), areas),
    choice('silence-hazard', t('silences.hazard'), hazards),
    h('label', { for: 'silence-duration' }, t('silences.duration'),
      h('input', { id: 'silence-duration', 'data-testid': 'silence-duration', type: 'number', min: 1, max: 43200, step: 1, value: 60, required: true })),
    h('label', { for: 'silence-comment' }, t('silences.comment'),
      h('input', { id: 'silence-comment', 'data-testid': 'silence-comment', type: 'text', maxlength: 2000, required: true })),
    h('button', { type: 'submit', 'data-testid': 'silence-create' }, t('silences.create')),
    message);
}

function matchers(m) {
  const parts = [];
  if (m.area) parts.push(`${t('silences.area')}: ${placeName(state.areaById.get(m.area), m.area)}`);
  if (m.hazard) parts.push(`${t('silences.hazard')}: ${term('hazard', m.hazard)}`);
  if (m.level) parts.push(`≤ ${t(`level.${m.level}`)}`);
  if (m.sensor) parts.push(m.sensor);
  return parts.join(' · ');
}

function table() {
  if (!silences.length) return h('p', {}, t('silences.none'));
  const headings = ['silences.matchers', 'silences.from', 'silences.until', 'silences.state', 'silences.by', 'silences.comment'];
  return h('table', {},
    h('thead', {}, h('tr', {}, headings.map((k) => h('th', { scope: 'col' }, t(k))), canAct() ? h('th', {}) : null)),
    h('tbody', {}, silences.map((x) => h('tr', { 'data-testid': 'silence-row', 'data-silence-id': x.id, 'data-state': x.state },
      h('td', {}, matchers(x.matchers)), h('td', {}, formatTime(x.starts_at, { date: true })),
      h('td', {}, x.ends_at ? formatTime(x.ends_at, { date: true }) : t('silences.weekly')),
      h('td', {}, t(`silence.state.${x.state}`)), h('td', {}, x.created_by), h('td', {}, x.comment),
      canAct() ? h('td', {}, h('button', { type: 'button', 'data-testid': 'silence-end', onclick: () => end(x.id) }, t('silences.end'))) : null))));
}

function render() {
  view().replaceChildren(h('h2', {}, t('silences.title')), form(), h('div', { class: 'silence-table' }, table()));
}

/** The list and the form's message anew; the form itself stays, with whatever is typed in it. */
function refresh() {
  view().querySelector('.silence-table')?.replaceChildren(table());
  const message = view().querySelector('.form-message[role="status"]');
  if (message) {
    message.className = `form-message ${notice?.ok ? 'form-ok' : 'form-error'}`;
    message.textContent = notice?.text ?? '';
  }
}

async function load() {
  try {
    silences = await getJson('/v1/silences?limit=500');
  } catch (err) {
    onError(err);
  }
  refresh();
}

async function create(event) {
  event.preventDefault();
  const area = byTestId('silence-area').value;
  const hazard = byTestId('silence-hazard').value;
  const minutes = Number(byTestId('silence-duration').value);
  const body = {
    matchers: { ...(area && { area }), ...(hazard && { hazard }) },
    ends_at: new Date(Date.now() + minutes * 60_000).toISOString(),
    comment: byTestId('silence-comment').value,
  };
  try {
    await postJson('/v1/silences', body);
    notice = { text: t('silences.created'), ok: true };
    byTestId('silence-comment').value = '';
  } catch (err) {
    notice = { text: err.message, ok: false };
    onError(err);
  }
  await load();
}

async function end(id) {
  try {
    await deleteJson(`/v1/silences/${encodeURIComponent(id)}`);
    notice = { text: t('silences.ended'), ok: true };
  } catch (err) {
    notice = { text: err.message, ok: false };
    onError(err);
  }
  await load();
}

export function showSilences() {
  notice = null;
  render();
  load();
}

export function initSilences({ onError: reportError }) {
  onError = reportError;
  subscribe('lang', () => {
    if (!view().hidden) render();
  });
}
