// A warning's detail, opened over the map: what it is, the evidence charted, reports quoted,
// recommendations, actions (only for a key that may act), the timeline, and its CAP message.
import { download, getJson, postJson } from './api.js';
import { h, byTestId, fill } from './dom.js';
import { chartRange, evidenceChart } from './chart.js';
import { coalesce } from './coalesce.js';
import { t, term, formatTime, formatNumber } from './i18n.js';
import { levelChip } from './levels.js';
import { areaLabel } from './list.js';
import { state, emit, subscribe, canAct, mayRead, upsertWarning } from './state.js';
import { describeEntry } from './timeline.js';

const ACTIONS_ALLOWED = {
  acknowledge: ['pending', 'active'],
  assign: ['pending', 'active', 'acknowledged'],
  resolve: ['pending', 'active', 'acknowledged'],
};
const REC_BUTTONS = { accept: 'rec-accept', reject: 'rec-reject', done: 'rec-done' };
const REC_NEXT = { proposed: ['accept', 'reject'], rejected: ['accept'], accepted: ['done'], done: [] };

let onError = () => {};
let openId = null;
let returnFocus = null;
let loadSeq = 0;
// The open warning's charts, by sensor and evidence count: a redraw after an action fetches no series again.
const charts = new Map();

function cachedSeries(key, evidence) {
  if (!charts.has(key)) {
    const range = chartRange(evidence);
    let fetched = null;
    const fetchSeries = (url) => {
      fetched ??= getJson(url).catch((err) => {
        charts.delete(key); // a failure is not kept: the next redraw asks again
        throw err;
      });
      return fetched;
    };
    charts.set(key, { range, fetchSeries });
  }
  return charts.get(key);
}

const panel = () => byTestId('warning-detail');

function section(title, ...children) {
  return h('section', {}, h('h3', {}, title), ...children);
}

function facts(w) {
  const rows = [
    [t('detail.status'), h('span', { 'data-testid': 'detail-status', class: `status-text-${w.status}` }, t(`status.${w.status}`))],
    [t('filter.level'), levelChip(w.level, { 'data-testid': 'detail-level' })],
    [t('detail.certainty'), `${term('certainty', w.certainty)} (${t('detail.confidence')} ${formatNumber(w.confidence * 100, 0)}%)`],
    [t('detail.assignee'), h('span', { 'data-testid': 'detail-assignee' }, w.assignee ?? '—')],
    [t('detail.responder'), w.responder ?? '—'],
    [t('detail.opened'), formatTime(w.created_at, { date: true })],
    [t('detail.updated'), formatTime(w.updated_at, { date: true })],
  ];
  if (w.muted_by) rows.push(['', t('detail.muted', { by: w.muted_by })]);
  return h('dl', { class: 'facts' }, rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function message() {
  return panel().querySelector('.action-message');
}

function say(text, ok = true) {
  const el = message();
  if (!el) return;
  el.className = `action-message ${ok ? 'form-ok' : 'form-error'}`;
  el.textContent = text;
}

let acting = false;

/**
 * Run an action, one at a time (a double click sends one request, not a second that the API
 * refuses); its error is shown beside the buttons and in the banner.
 */
async function act(label, call) {
  if (acting) return null;
  acting = true;
  say('');
  try {
    const result = await call();
    say(t('action.done', { action: label }));
    return result;
  } catch (err) {
    say(err.message, false);
    onError(err);
    return null;
  } finally {
    acting = false;
  }
}

async function transition(w, verb, body) {
  const result = await act(t(`action.${verb}`), () => postJson(`/v1/warnings/${encodeURIComponent(w.id)}/${verb}`, body));
  if (result) {
    upsertWarning(result);
    emit('warnings', result.id);
    await load(w.id, { keepMessage: true });
  }
}

function actions(w) {
  if (!canAct()) return null; // a key that may not act gets no action buttons at all
  const allowed = (verb) => ACTIONS_ALLOWED[verb].includes(w.status);
  const assignee = h('input', { id: 'assign-to', 'data-testid': 'assign-to', type: 'text', maxlength: 128, value: w.assignee ?? '' });
  return section(t('detail.actions'),
    h('div', { class: 'actions' },
      h('button', { type: 'button', 'data-testid': 'action-acknowledge', disabled: !allowed('acknowledge'), onclick: () => transition(w, 'acknowledge', {}) }, t('action.acknowledge')),
      h('label', { for: 'assign-to' }, t('action.assign.to'), assignee),
      h('button', {
        type: 'button', 'data-testid': 'action-assign', disabled: !allowed('assign'),
        onclick: () => transition(w, 'assign', { assignee: assignee.value.trim() }),
      }, t('action.assign')),
      h('button', { type: 'button', 'data-testid': 'action-resolve', disabled: !allowed('resolve'), onclick: () => transition(w, 'resolve', {}) }, t('action.resolve'))),
    h('p', { class: 'action-message', role: 'status' }));
}

function evidenceSection(detail) {
  const bySensor = new Map();
  for (const e of detail.evidence) {
    if (e.source !== 'sensor' || !e.sensor_id) continue;
    if (!bySensor.has(e.sensor_id)) bySensor.set(e.sensor_id, []);
    bySensor.get(e.sensor_id).push(e);
  }
  if (!bySensor.size || !mayRead()) return null; // series need the read permission
  const charts = [...bySensor].map(([sensorId, evidence]) => {
    const name = state.sensorById.get(sensorId)?.name || sensorId;
    const label = `${name} (${sensorId})`;
    return h('figure', { class: 'chart' }, h('figcaption', { class: 'chart-title' }, label),
      evidenceChart(sensorId, evidence, { label, onError, ...cachedSeries(`${sensorId}|${evidence.length}`, evidence) }));
  });
  return section(t('detail.evidence'), ...charts);
}

function reportsSection(timeline) {
  const reports = timeline.items.filter((e) => e.type === 'report');
  const body = reports.length
    ? reports.map((r) => h('blockquote', { 'data-report-id': r.report_id },
      h('p', {}, r.excerpt ?? r.report_id), h('footer', { class: 'rec-meta' }, `${formatTime(r.at)} · ${r.source ?? ''} · ${r.category ?? ''}`)))
    : [h('p', { class: 'rec-meta' }, t('detail.noreports'))];
  return h('section', { 'data-testid': 'detail-reports' }, h('h3', {}, t('detail.reports')), ...body);
}

function recommendation(w, rec) {
  const buttons = canAct()
    ? h('div', { class: 'rec-buttons' }, Object.entries(REC_BUTTONS).map(([verb, testId]) => h('button', {
      type: 'button', 'data-testid': testId, disabled: !(REC_NEXT[rec.state] ?? []).includes(verb),
      onclick: async () => {
        const path = `/v1/warnings/${encodeURIComponent(w.id)}/recommendations/${encodeURIComponent(rec.rid)}/${verb}`;
        if (await act(t(`rec.${verb}`), () => postJson(path, {}))) await load(w.id, { keepMessage: true });
      },
    }, t(`rec.${verb}`))))
    : null;
  return h('li', { class: 'recommendation', 'data-testid': 'recommendation', 'data-rid': rec.rid, 'data-state': rec.state },
    h('div', { class: 'rec-head' }, h('span', {}, `${rec.rank}.`), h('span', { class: 'rec-what' }, rec.what),
      h('span', { class: `rec-state rec-state-${rec.state}` }, t(`rec.state.${rec.state}`))),
    h('div', { class: 'rec-meta' }, `${t('rec.who')}: ${rec.who}`, rec.by ? ` · ${t('rec.by')}: ${formatTime(rec.by)}` : '', ` · ${rec.why}`),
    buttons);
}

function render(detail, recs, timeline) {
  const w = detail;
  const heading = h('h2', { tabindex: '-1', id: 'detail-heading' }, `${term('hazard', w.hazard)} · ${areaLabel(w.area)}`);
  panel().setAttribute('aria-labelledby', 'detail-heading');
  fill(panel(),
    h('div', { class: 'panel-head' }, heading,
      w.exercise ? h('span', { class: 'drill-mark', 'data-testid': 'detail-drill' }, t('drill')) : null,
      h('button', { type: 'button', 'data-testid': 'detail-close', onclick: () => closeDetail() }, t('detail.close'))),
    h('div', { class: 'detail-facts' }, facts(w)),
    h('section', {}, h('h3', {}, t('detail.explanation')), h('p', { class: 'explanation', 'data-testid': 'detail-explanation' }, w.explanation)),
    actions(w),
    h('p', {}, h('button', { type: 'button', 'data-testid': 'cap-download', onclick: () => downloadCap(w.id) }, t('detail.cap'))),
    evidenceSection(detail),
    reportsSection(timeline),
    section(t('detail.recommendations'), recs.items.length
      ? h('ol', { class: 'rec-list' }, recs.items.map((r) => recommendation(w, r)))
      : h('p', { class: 'rec-meta' }, t('detail.norecs'))),
    section(t('detail.timeline'), h('ol', { class: 'timeline', 'data-testid': 'timeline' }, timelineItems(timeline))),
  );
  return heading;
}

async function downloadCap(id) {
  try {
    await download(`/v1/warnings/${encodeURIComponent(id)}/cap`, `citywarn-${id}.cap.xml`);
  } catch (err) {
    onError(err);
  }
}

/** The control in the panel that has focus, by what finds it again after a redraw. */
function focusedControl() {
  const el = document.activeElement;
  if (!el || !panel().contains(el) || !el.dataset.testid) return null;
  return { testId: el.dataset.testid, rid: el.closest('[data-rid]')?.dataset.rid };
}

/** Focus the same control after a redraw; one now disabled gives focus to the nearest one that is not. */
function refocus({ testId, rid }, heading) {
  const scope = rid ? panel().querySelector(`[data-rid="${CSS.escape(rid)}"]`) : panel();
  const same = scope?.querySelector(`[data-testid="${testId}"]`);
  const target = same && !same.disabled ? same : scope?.querySelector('button:enabled, input') ?? heading;
  target.focus({ preventScroll: true });
}

async function load(id, { focus = false, keepMessage = false } = {}) {
  const seq = ++loadSeq;
  const note = keepMessage ? message()?.cloneNode(true) : null;
  const scroll = panel().scrollTop;
  const base = `/v1/warnings/${encodeURIComponent(id)}`;
  try {
    const [detail, recs, timeline] = await Promise.all([
      getJson(base), getJson(`${base}/recommendations`), getJson(`${base}/timeline?limit=500`),
    ]);
    if (seq !== loadSeq || openId !== id) return; // another warning was opened meanwhile
    const before = focusedControl();
    const typed = panel().dataset.warningId === id ? byTestId('assign-to', panel())?.value : undefined;
    const heading = render(detail, recs, timeline);
    const assignee = byTestId('assign-to', panel());
    if (assignee && typed !== undefined) assignee.value = typed; // a name being typed survives the redraw
    panel().scrollTop = scroll;
    if (note && message()) message().replaceWith(note);
    if (focus) heading.focus();
    else if (before) refocus(before, heading);
  } catch (err) {
    if (seq !== loadSeq) return;
    panel().replaceChildren(h('div', { class: 'panel-head' }, h('h2', { tabindex: '-1' }, id),
      h('button', { type: 'button', 'data-testid': 'detail-close', onclick: () => closeDetail() }, t('detail.close'))),
    h('p', { class: 'form-error', role: 'alert' }, err.message));
    onError(err);
  }
}

function timelineItems(timeline) {
  return timeline.items.map((e) => h('li', { class: 'timeline-item', 'data-testid': 'timeline-item', 'data-type': e.type },
    h('time', { datetime: e.at }, formatTime(e.at)), h('span', {}, describeEntry(e))));
}

/** The timeline again, alone: the rest of the panel (a name being typed to assign) stays as it is. */
async function refreshTimeline(id) {
  try {
    const timeline = await getJson(`/v1/warnings/${encodeURIComponent(id)}/timeline?limit=500`);
    const list = byTestId('timeline', panel());
    if (openId === id && list) list.replaceChildren(...timelineItems(timeline));
  } catch (err) {
    onError(err);
  }
}

const refreshTimelineSoon = coalesce(refreshTimeline, 1000);

export function openDetail(id) {
  if (openId === null) returnFocus = document.activeElement;
  if (openId !== id) charts.clear();
  openId = id;
  const el = panel();
  el.dataset.warningId = id;
  el.hidden = false;
  el.replaceChildren(h('p', { tabindex: '-1' }, t('detail.loading')));
  el.firstChild.focus();
  if (state.flash.delete(id)) emit('warnings', id); // seen: it no longer stands out
  load(id, { focus: true });
}

/** Close, and give focus back to where it was (the row that opened it, if it is still there). */
export function closeDetail({ restoreFocus = true } = {}) {
  const id = openId;
  openId = null;
  loadSeq += 1;
  const el = panel();
  el.hidden = true;
  el.replaceChildren();
  delete el.dataset.warningId;
  if (!restoreFocus || id === null) return;
  const row = document.querySelector(`[data-testid="warning-row"][data-warning-id="${CSS.escape(id)}"]`);
  const target = returnFocus?.isConnected ? returnFocus : row;
  target?.focus();
  returnFocus = null;
}

export function initDetail({ onError: reportError }) {
  onError = reportError;
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && openId !== null) {
      event.preventDefault();
      closeDetail();
    }
  });
  // A change from the stream to the warning on screen shows at once: its facts and what may be done.
  subscribe('warnings', (id) => {
    if (id === undefined || id !== openId) return;
    const w = state.warnings.get(id);
    const holder = panel().querySelector('.detail-facts');
    if (!w || !holder) return;
    holder.replaceChildren(facts(w));
    for (const [verb, statuses] of Object.entries(ACTIONS_ALLOWED)) {
      const button = byTestId(`action-${verb}`, panel());
      if (button) button.disabled = !statuses.includes(w.status);
    }
    refreshTimelineSoon(id);
  });
  subscribe('lang', () => {
    if (openId !== null) load(openId);
  });
}
