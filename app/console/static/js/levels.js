// The four warning levels in order; colour is always shown with the level's name beside it.
import { h } from './dom.js';
import { t } from './i18n.js';

export const LEVELS = ['blue', 'yellow', 'orange', 'red'];
export const OPEN_STATUSES = ['pending', 'active', 'acknowledged'];

export function levelRank(level) {
  return LEVELS.indexOf(level);
}

export function isOpen(warning) {
  return OPEN_STATUSES.includes(warning.status);
}

/** The highest of some levels, or null for none. */
export function highest(levels) {
  let best = null;
  for (const level of levels) if (best === null || levelRank(level) > levelRank(best)) best = level;
  return best;
}

/** A swatch in the level's colour with its name as text: colour is never the only signal. */
export function levelChip(level, attrs = {}) {
  return h('span', { class: `level-chip level-${level}`, 'data-level': level, ...attrs },
    h('span', { class: 'swatch', 'aria-hidden': 'true' }), h('span', { class: 'level-name' }, t(`level.${level}`)));
}
