// One line of a warning's timeline in words, whatever its type.
import { t, term, formatNumber } from './i18n.js';
import { state } from './state.js';

function sensorName(id) {
  const name = state.sensorById.get(id)?.name;
  return name ? `${name} (${id})` : id;
}

function transition(e) {
  const level = e.from_level && e.from_level !== e.to_level
    ? `${t(`level.${e.from_level}`)} → ${t(`level.${e.to_level}`)}` : t(`level.${e.to_level}`);
  const status = e.from_status && e.from_status !== e.to_status
    ? `${t(`status.${e.from_status}`)} → ${t(`status.${e.to_status}`)}` : t(`status.${e.to_status}`);
  return `${term('event', e.action)}: ${status}, ${level} · ${t('timeline.by', { actor: e.actor })}${e.note ? ` · ${e.note}` : ''}`;
}

export function describeEntry(e) {
  switch (e.type) {
    case 'transition':
      return transition(e);
    case 'reading':
      return `${t('timeline.reading', { value: formatNumber(e.value), unit: e.unit ?? '', sensor: sensorName(e.sensor_id) })}${e.level ? ` (${t(`level.${e.level}`)})` : ''}`;
    case 'report':
      return `${t('timeline.report')}: ${e.excerpt ?? e.report_id}`;
    case 'report_burst':
      return t('timeline.report_burst', { count: e.count, kind: e.kind });
    case 'delivery':
      return t('timeline.delivery', { event: e.event_type, status: e.status });
    case 'recommendation':
      return `${t('timeline.recommendation', { state: t(`rec.state.${e.state}`), what: e.what ?? e.rid })} · ${t('timeline.by', { actor: e.actor })}`;
    default:
      return term('timeline', e.type);
  }
}
