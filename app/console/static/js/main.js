// The console's start: sign-in, the header, the views, and the live stream that feeds them.
import { ApiError, getJson, onUnauthorized, session } from './api.js';
import { byTestId } from './dom.js';
import { applyStatic, lang, onLangChange, setLang, t, term } from './i18n.js';
import { areaLabel, initList } from './list.js';
import { state, emit, reset, setAreas, setSensors, subscribe, upsertWarning, mayRead } from './state.js';
import { openStream } from './stream.js';
import { coalesce } from './coalesce.js';
import { initDetail, openDetail, closeDetail } from './detail.js';
import { closeArea, initMap } from './map.js';
import { initSilences, showSilences } from './silences.js';
import { initHealth, showHealth, refreshHealth } from './health.js';
import { showError, clearError, announce } from './notices.js';

let stream = null;
const refreshHealthSoon = coalesce(refreshHealth, 2000);
let signedIn = false;

function showSignedIn(yes) {
  signedIn = yes;
  for (const el of document.querySelectorAll('[data-session]')) el.hidden = !yes;
  document.getElementById('signin-view').hidden = yes;
  if (yes) showView('overview');
  else for (const el of document.querySelectorAll('[data-view-panel]')) el.hidden = true;
}

/** Silences and sensor health are read with the read permission: a key without it is not offered them. */
function offerPages() {
  for (const view of ['silences', 'health']) {
    document.querySelector(`[data-view="${view}"]`).hidden = !mayRead();
  }
}

function showView(view) {
  for (const el of document.querySelectorAll('[data-view-panel]')) el.hidden = el.dataset.viewPanel !== view;
  for (const button of document.querySelectorAll('[data-view]')) {
    button.setAttribute('aria-pressed', String(button.dataset.view === view));
  }
  if (view === 'silences') showSilences();
  if (view === 'health') showHealth();
}

function renderWhoami() {
  const me = state.me;
  byTestId('whoami').textContent = me ? `${me.label} · ${t(`role.${me.role}`)}` : '';
}

function renderLangToggle() {
  const toggle = byTestId('lang-toggle');
  toggle.textContent = t('lang.switch');
  toggle.lang = lang() === 'en' ? 'zh' : 'en';
  toggle.setAttribute('aria-label', t('lang.switch.label'));
}

function setStreamState(value) {
  const el = byTestId('stream-status');
  el.dataset.state = value;
  if (value === 'open') el.title = '';
  el.textContent = t(`stream.${value}`);
}

async function loadList() {
  const page = await getJson('/v1/warnings?exercise=any&limit=500');
  for (const w of page.items) upsertWarning(w);
  state.unlisted = Math.max(0, page.total - page.items.length); // past the API's page of 500: said, not hidden
  state.loaded = true;
  emit('warnings');
}

function reportError(err) {
  if (err instanceof ApiError && err.status === 401) return; // signing out already
  if (err?.name === 'AbortError') return;
  showError(err?.message ?? String(err));
}

function applyChange({ event, warning }) {
  const change = upsertWarning(warning);
  if (change) {
    const vars = { level: t(`level.${warning.level}`), hazard: term('hazard', warning.hazard), area: areaLabel(warning.area) };
    announce(t(`announce.${change}`, vars));
  }
  emit('warnings', warning.id);
  if (warning.hazard === 'sensor_fault') refreshHealthSoon();
}

function startStream() {
  let everLoaded = false;
  const load = () => {
    if (everLoaded) return;
    everLoaded = true;
    loadList().catch((err) => {
      everLoaded = false;
      reportError(err);
    });
  };
  stream = openStream({
    onReady: (_ready, firstTime) => {
      if (firstTime) load();
    },
    onWarning: applyChange,
    onState: setStreamState,
    // Without the stream the list is still worth having: it is loaded once, and the stream retried.
    onFailure: (err) => {
      byTestId('stream-status').title = err.message;
      if (err.status) showError(err.message); // refused, not merely dropped: say so
      load();
    },
    onUnauthorized: () => signOut(t('signin.expired')),
  });
}

async function loadMapData() {
  if (!mayRead()) return; // an integrator's key reads warnings only
  const [areas, sensors] = await Promise.all([getJson('/v1/areas'), getJson('/v1/sensors')]);
  setAreas(areas);
  setSensors(sensors);
  emit('areas');
  await refreshHealth();
}

async function start() {
  state.me = await getJson('/v1/me', { quiet401: true });
  showSignedIn(true);
  offerPages();
  renderWhoami();
  emit('session');
  emit('warnings');
  startStream();
  loadMapData().catch(reportError);
}

function signOut(message) {
  stream?.stop();
  stream = null;
  session.clear();
  reset();
  closeDetail({ restoreFocus: false });
  closeArea({ restoreFocus: false });
  clearError();
  showSignedIn(false);
  emit('warnings');
  const error = byTestId('signin-error');
  error.hidden = !message;
  error.textContent = message ?? '';
  byTestId('signin-key').value = '';
  byTestId('signin-key').focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = byTestId('signin-key');
  const error = byTestId('signin-error');
  const key = input.value.trim();
  error.hidden = true;
  if (!key) {
    error.textContent = t('signin.empty');
    error.hidden = false;
    return;
  }
  session.set(key);
  try {
    await start();
    input.value = '';
  } catch (err) {
    session.clear();
    error.textContent = err.status === 401 ? t('signin.refused', { detail: err.message }) : err.message;
    error.hidden = false;
  }
}

function init() {
  applyStatic();
  renderLangToggle();
  setStreamState('closed');
  onUnauthorized(() => {
    if (signedIn) signOut(t('signin.expired'));
  });
  byTestId('signin').addEventListener('submit', signIn);
  byTestId('signout').addEventListener('click', () => signOut());
  byTestId('lang-toggle').addEventListener('click', () => setLang(lang() === 'en' ? 'zh' : 'en'));
  for (const button of document.querySelectorAll('[data-view]')) {
    button.addEventListener('click', () => showView(button.dataset.view));
  }
  subscribe('lang', () => {
    renderLangToggle();
    renderWhoami();
    setStreamState(byTestId('stream-status').dataset.state);
  });
  subscribe('open-warning', (id) => {
    showView('overview');
    openDetail(id);
  });
  initList({ open: (id) => openDetail(id) });
  initDetail({ onError: reportError });
  initMap({ onError: reportError });
  initSilences({ onError: reportError });
  initHealth({ onError: reportError });
  onLangChange(() => emit('lang'));
  if (session.key()) {
    start().catch((err) => signOut(err.status === 401 ? t('signin.expired') : err.message));
  } else {
    showSignedIn(false);
    byTestId('signin-key').focus();
  }
}

init();
