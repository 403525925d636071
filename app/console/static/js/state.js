// What the console knows: the signed-in key, the warnings (kept current by the stream), areas,
// sensors and their health. Views subscribe to topics and redraw themselves.
import { levelRank } from './levels.js';

export const state = {
  me: null,
  warnings: new Map(),
  flash: new Map(), // warning id -> "new" | "escalated", until the operator opens it
  loaded: false, // the first full list is in: from then on, unseen warnings are new
  unlisted: 0, // warnings the first list left out (it reads one page of 500)
  areas: [], // GeoJSON features
  areaById: new Map(),
  sensors: [],
  sensorById: new Map(),
  health: new Map(), // sensor id -> its fault record (GET /v1/sensor-health)
  filters: { level: '', hazard: '', area: '', status: '' },
};

const listeners = new Map();

export function subscribe(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
}

export function emit(topic, payload) {
  for (const fn of listeners.get(topic) ?? []) fn(payload);
}

export function canAct() {
  return Boolean(state.me?.permissions?.includes('act'));
}

export function mayRead() {
  return Boolean(state.me?.permissions?.includes('read'));
}

/**
 * Take a warning's state unless an older one: the list and the stream may deliver the same
 * warning in either order. Returns "new", "escalated" or null, which the caller may flash.
 */
export function upsertWarning(incoming) {
  const { evidence, events, ...warning } = incoming;
  const known = state.warnings.get(warning.id);
  if (known && Date.parse(known.updated_at) > Date.parse(warning.updated_at)) return null;
  state.warnings.set(warning.id, warning);
  if (!state.loaded) return null;
  let change = null;
  if (!known) change = 'new';
  else if (levelRank(warning.level) > levelRank(known.level)) change = 'escalated';
  if (change) state.flash.set(warning.id, change);
  return change;
}

export function setAreas(collection) {
  state.areas = collection.features;
  state.areaById = new Map(collection.features.map((f) => [f.properties.id, f.properties]));
}

export function setSensors(sensors) {
  state.sensors = sensors;
  state.sensorById = new Map(sensors.map((x) => [x.id, x]));
}

export function setHealth(faults) {
  state.health = new Map(faults.map((f) => [f.sensor_id, f]));
}

/** The area and every area inside it (a district's grids), for filters that include sub-areas. */
export function areaAndChildren(areaId) {
  const ids = new Set([areaId]);
  for (const props of state.areaById.values()) if (props.parent === areaId) ids.add(props.id);
  return ids;
}

export function reset() {
  state.me = null;
  state.warnings.clear();
  state.flash.clear();
  state.loaded = false;
  state.unlisted = 0;
  state.health.clear();
}
