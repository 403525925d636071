// Chinese and English words of the console. Names of areas come from the data (name_zh); hazard,
// level, status and certainty names come from here. English is the default.

const EN = {
  'app.title': 'citywarn EOC console',
  'nav.overview': 'Overview', 'nav.silences': 'Silences', 'nav.health': 'Sensor health',
  'signout': 'Sign out', 'lang.switch': '中文', 'lang.switch.label': 'Switch to Chinese',
  'signin.title': 'Sign in', 'signin.key': 'API key', 'signin.submit': 'Sign in',
  'signin.hint': 'The key is kept for this browser tab only.',
  'signin.empty': 'Enter an API key.', 'signin.refused': 'The key was refused: {detail}',
  'signin.expired': 'Your session ended: sign in again.',
  'stream.open': 'Live', 'stream.connecting': 'Connecting…', 'stream.closed': 'Disconnected: retrying',
  'error.dismiss': 'Dismiss', 'error.network': 'The service cannot be reached',
  'list.title': 'Warnings', 'list.count': '{shown} of {total} warnings', 'list.empty': 'No warnings match the filters.',
  'list.loading': 'Loading warnings…', 'list.unlisted': '({n} older warnings not loaded)',
  'filter.level': 'Level', 'filter.hazard': 'Hazard', 'filter.area': 'Area', 'filter.status': 'Status',
  'filter.any': 'All', 'filter.open': 'Open (not resolved)', 'filter.minlevel': '{level} and above',
  'map.title': 'Map', 'map.legend': 'Highest open level', 'map.none': 'No open warning',
  'map.sensor.ok': 'Sensor OK', 'map.sensor.fault': 'Sensor fault', 'map.unavailable': 'The map cannot be shown: {detail}',
  'drill': 'DRILL', 'flash.new': 'NEW', 'flash.escalated': 'ESCALATED',
  'announce.new': 'New {level} {hazard} warning in {area}',
  'announce.escalated': '{hazard} warning in {area} escalated to {level}',
  'age.s': '{n} s', 'age.m': '{n} min', 'age.h': '{n} h', 'age.d': '{n} d',
  'detail.close': 'Close', 'detail.explanation': 'Explanation', 'detail.evidence': 'Evidence',
  'detail.reports': 'Reports', 'detail.noreports': 'No reports cited.', 'detail.recommendations': 'Recommendations',
  'detail.norecs': 'No recommendations.', 'detail.actions': 'Actions', 'detail.timeline': 'Timeline',
  'detail.cap': 'Download CAP', 'detail.assignee': 'Assigned to', 'detail.confidence': 'Confidence',
  'detail.certainty': 'Certainty', 'detail.status': 'Status', 'detail.opened': 'Opened', 'detail.updated': 'Updated',
  'detail.loading': 'Loading…', 'detail.muted': 'Notification held by {by}', 'detail.responder': 'Responder',
  'action.acknowledge': 'Acknowledge', 'action.assign': 'Assign', 'action.resolve': 'Resolve',
  'action.assign.to': 'Assign to', 'action.note': 'Note (optional)', 'action.done': 'Done: {action}',
  'rec.accept': 'Accept', 'rec.reject': 'Reject', 'rec.done': 'Done', 'rec.who': 'Who', 'rec.by': 'By',
  'rec.state.proposed': 'Proposed', 'rec.state.accepted': 'Accepted', 'rec.state.rejected': 'Rejected',
  'rec.state.done': 'Done',
  'chart.line': 'warning line {value}', 'chart.nodata': 'No stored readings in this range.',
  'chart.signal': 'signal', 'chart.label': '{sensor}: readings from {start} to {end}',
  'timeline.reading': 'Reading {value} {unit} at {sensor}', 'timeline.report': 'Report',
  'timeline.report_burst': '{count} reports ({kind})', 'timeline.delivery': 'Webhook {event}: {status}',
  'timeline.recommendation': 'Recommendation {state}: {what}', 'timeline.by': 'by {actor}',
  'area.sensors': 'Sensors ({n})', 'area.city': 'Whole city', 'area.parent': 'District: {name}', 'area.close': 'Close', 'area.population': 'Population', 'area.highest': 'Highest open level',
  'area.warnings': 'Open warnings', 'area.nowarnings': 'No open warning here.', 'area.signals': 'Signals since {since}',
  'area.reports': 'Reports since {since}', 'area.loading': 'Loading the area…',
  'silences.title': 'Silences', 'silences.new': 'New silence', 'silences.area': 'Area',
  'silences.hazard': 'Hazard', 'silences.duration': 'Duration (minutes)', 'silences.comment': 'Why (comment)',
  'silences.create': 'Create silence', 'silences.end': 'End', 'silences.none': 'No active or upcoming silence.',
  'silences.any': 'Any', 'silences.matchers': 'Mutes', 'silences.until': 'Until', 'silences.from': 'From',
  'silences.by': 'Set by', 'silences.state': 'State', 'silences.created': 'Silence created.',
  'silences.ended': 'Silence ended.', 'silences.weekly': 'weekly window', 'silences.readonly': 'Your key may read silences but not set them.',
  'silence.state.active': 'Active', 'silence.state.pending': 'Upcoming', 'silence.state.expired': 'Expired',
  'health.title': 'Sensor health', 'health.none': 'Every sensor is healthy.', 'health.sensor': 'Sensor',
  'health.kind': 'Kind', 'health.area': 'Area', 'health.fault': 'Fault', 'health.since': 'Since',
  'health.level': 'Level', 'health.warning': 'Warning', 'health.open': 'Open warning',
  'fault.silent': 'Silent', 'fault.flatline': 'Stuck (flat line)', 'fault.out_of_range': 'Out of range',
  'event.opened': 'Opened', 'event.activated': 'Activated', 'event.escalated': 'Escalated',
  'event.deescalated': 'De-escalated', 'event.acknowledged': 'Acknowledged', 'event.assigned': 'Assigned',
  'event.annotated': 'Note', 'event.resolved': 'Resolved', 'event.certainty': 'Certainty changed',
  'event.handed_up': 'Handed up', 'event.stale': 'Stale', 'event.fault': 'Fault',
  'level.blue': 'Blue', 'level.yellow': 'Yellow', 'level.orange': 'Orange', 'level.red': 'Red',
  'status.pending': 'Pending', 'status.active': 'Active', 'status.acknowledged': 'Acknowledged',
  'status.resolved': 'Resolved',
  'certainty.Observed': 'Observed', 'certainty.Likely': 'Likely', 'certainty.Possible': 'Possible',
  'certainty.Unlikely': 'Unlikely', 'certainty.Unknown': 'Unknown',
  'hazard.gas_leak': 'Gas leak', 'hazard.fire': 'Fire', 'hazard.flood': 'Flood',
  'hazard.structural_damage': 'Structural damage', 'hazard.waterlogging': 'Waterlogging',
  'hazard.public_health': 'Public health', 'hazard.power_outage': 'Power outage',
  'hazard.traffic_accident': 'Traffic accident', 'hazard.other': 'Other', 'hazard.sensor_fault': 'Sensor fault',
  'role.viewer': 'viewer', 'role.operator': 'operator', 'role.integrator': 'integrator', 'role.ingest': 'ingest',
  'role.admin': 'admin',
};

const ZH = {
  'app.title': 'citywarn 应急指挥值班台',
  'nav.overview': '总览', 'nav.silences': '静默', 'nav.health': '传感器状态',
  'signout': '退出', 'lang.switch': 'English', 'lang.switch.label': '切换到英文',
  'signin.title': '登录', 'signin.key': 'API 密钥', 'signin.submit': '登录',
  'signin.hint': '密钥只保存在本浏览器标签页中。',
  'signin.empty': '请输入 API 密钥。', 'signin.refused': '密钥被拒绝：{detail}',
  'signin.expired': '会话已结束，请重新登录。',
  'stream.open': '实时', 'stream.connecting': '连接中…', 'stream.closed': '已断开，正在重试',
  'error.dismiss': '关闭', 'error.network': '无法连接服务',
  'list.title': '预警', 'list.count': '显示 {shown} / 共 {total} 条预警', 'list.empty': '没有符合筛选条件的预警。',
  'list.loading': '正在加载预警…', 'list.unlisted': '（另有 {n} 条较早的预警未加载）',
  'filter.level': '级别', 'filter.hazard': '灾种', 'filter.area': '区域', 'filter.status': '状态',
  'filter.any': '全部', 'filter.open': '未解除', 'filter.minlevel': '{level}及以上',
  'map.title': '地图', 'map.legend': '最高未解除级别', 'map.none': '无未解除预警',
  'map.sensor.ok': '传感器正常', 'map.sensor.fault': '传感器故障', 'map.unavailable': '无法显示地图：{detail}',
  'drill': '演练', 'flash.new': '新', 'flash.escalated': '升级',
  'announce.new': '{area}新发布{level}{hazard}预警',
  'announce.escalated': '{area}{hazard}预警升级为{level}',
  'age.s': '{n} 秒', 'age.m': '{n} 分钟', 'age.h': '{n} 小时', 'age.d': '{n} 天',
  'detail.close': '关闭', 'detail.explanation': '说明', 'detail.evidence': '证据',
  'detail.reports': '报告', 'detail.noreports': '未引用报告。', 'detail.recommendations': '处置建议',
  'detail.norecs': '没有处置建议。', 'detail.actions': '操作', 'detail.timeline': '时间线',
  'detail.cap': '下载 CAP', 'detail.assignee': '负责人', 'detail.confidence': '置信度',
  'detail.certainty': '确定性', 'detail.status': '状态', 'detail.opened': '发布', 'detail.updated': '更新',
  'detail.loading': '加载中…', 'detail.muted': '通知被 {by} 暂停', 'detail.responder': '响应层级',
  'action.acknowledge': '确认', 'action.assign': '指派', 'action.resolve': '解除',
  'action.assign.to': '指派给', 'action.note': '备注（可选）', 'action.done': '已完成：{action}',
  'rec.accept': '采纳', 'rec.reject': '拒绝', 'rec.done': '已完成', 'rec.who': '执行方', 'rec.by': '期限',
  'rec.state.proposed': '待定', 'rec.state.accepted': '已采纳', 'rec.state.rejected': '已拒绝',
  'rec.state.done': '已完成',
  'chart.line': '预警线 {value}', 'chart.nodata': '此时段没有存储的读数。',
  'chart.signal': '信号', 'chart.label': '{sensor}：{start} 至 {end} 的读数',
  'timeline.reading': '{sensor} 读数 {value} {unit}', 'timeline.report': '报告',
  'timeline.report_burst': '{count} 条报告（{kind}）', 'timeline.delivery': 'Webhook {event}：{status}',
  'timeline.recommendation': '处置建议{state}：{what}', 'timeline.by': '操作人 {actor}',
  'area.sensors': '传感器（{n}）', 'area.city': '全市', 'area.parent': '所属区：{name}', 'area.close': '关闭', 'area.population': '人口', 'area.highest': '最高未解除级别',
  'area.warnings': '未解除预警', 'area.nowarnings': '此区域没有未解除预警。', 'area.signals': '{since} 以来的信号',
  'area.reports': '{since} 以来的报告', 'area.loading': '正在加载区域…',
  'silences.title': '静默', 'silences.new': '新建静默', 'silences.area': '区域',
  'silences.hazard': '灾种', 'silences.duration': '时长（分钟）', 'silences.comment': '原因（备注）',
  'silences.create': '创建静默', 'silences.end': '结束', 'silences.none': '没有生效或待生效的静默。',
  'silences.any': '任意', 'silences.matchers': '静默范围', 'silences.until': '截止', 'silences.from': '开始',
  'silences.by': '设置人', 'silences.state': '状态', 'silences.created': '静默已创建。',
  'silences.ended': '静默已结束。', 'silences.weekly': '每周时段', 'silences.readonly': '您的密钥可以查看静默，但不能设置。',
  'silence.state.active': '生效中', 'silence.state.pending': '待生效', 'silence.state.expired': '已过期',
  'health.title': '传感器状态', 'health.none': '所有传感器正常。', 'health.sensor': '传感器',
  'health.kind': '类型', 'health.area': '区域', 'health.fault': '故障', 'health.since': '起始',
  'health.level': '级别', 'health.warning': '预警', 'health.open': '打开预警',
  'fault.silent': '无数据', 'fault.flatline': '数值停滞', 'fault.out_of_range': '超出量程',
  'event.opened': '发布', 'event.activated': '生效', 'event.escalated': '升级',
  'event.deescalated': '降级', 'event.acknowledged': '确认', 'event.assigned': '指派',
  'event.annotated': '备注', 'event.resolved': '解除', 'event.certainty': '确定性变化',
  'event.handed_up': '上报', 'event.stale': '数据中断', 'event.fault': '故障',
  'level.blue': '蓝色', 'level.yellow': '黄色', 'level.orange': '橙色', 'level.red': '红色',
  'status.pending': '待确认', 'status.active': '生效中', 'status.acknowledged': '已确认',
  'status.resolved': '已解除',
  'certainty.Observed': '已观测', 'certainty.Likely': '很可能', 'certainty.Possible': '可能',
  'certainty.Unlikely': '不太可能', 'certainty.Unknown': '未知',
  'hazard.gas_leak': '燃气泄漏', 'hazard.fire': '火灾', 'hazard.flood': '洪水',
  'hazard.structural_damage': '结构损坏', 'hazard.waterlogging': '内涝',
  'hazard.public_health': '公共卫生', 'hazard.power_outage': '停电',
  'hazard.traffic_accident': '交通事故', 'hazard.other': '其他', 'hazard.sensor_fault': '传感器故障',
  'role.viewer': '查看者', 'role.operator': '值班员', 'role.integrator': '集成方', 'role.ingest': '数据接入',
  'role.admin': '管理员',
};

const DICTIONARIES = { en: EN, zh: ZH };
const STORAGE = 'citywarn.lang';
let current = localStorage.getItem(STORAGE) === 'zh' ? 'zh' : 'en';
const listeners = new Set();

export function lang() {
  return current;
}

/** A word in the chosen language; {name} slots are filled from vars. A key with no entry shows itself. */
export function t(key, vars = {}) {
  const text = DICTIONARIES[current][key] ?? EN[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** A dictionary word if there is one (a hazard the dictionary lacks shows as sent). */
export function term(prefix, value) {
  const key = `${prefix}.${value}`;
  return key in EN ? t(key) : String(value ?? '');
}

export function setLang(next) {
  current = next === 'zh' ? 'zh' : 'en';
  localStorage.setItem(STORAGE, current);
  applyStatic();
  for (const fn of listeners) fn(current);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/** The page's fixed words (data-i18n) and its lang attribute. */
export function applyStatic(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  document.title = t('app.title');
}

/** An area's name in the chosen language, from its GeoJSON properties; its id if unknown. */
export function placeName(props, fallbackId) {
  if (!props) return fallbackId ?? '';
  return (current === 'zh' && props.name_zh) || props.name || props.id || fallbackId || '';
}

const LOCALES = { en: 'en-GB', zh: 'zh-CN' };

export function formatTime(iso, { date = false } = {}) {
  if (!iso) return '';
  const when = new Date(iso);
  const options = date
    ? { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' }
    : { month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' };
  return new Intl.DateTimeFormat(LOCALES[current], options).format(when);
}

export function formatNumber(value, digits = 3) {
  return new Intl.NumberFormat(LOCALES[current], { maximumFractionDigits: digits }).format(value);
}

/** How long ago, in the largest whole unit. */
export function formatAge(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return t('age.s', { n: seconds });
  if (seconds < 3600) return t('age.m', { n: Math.floor(seconds / 60) });
  if (seconds < 86400) return t('age.h', { n: Math.floor(seconds / 3600) });
  return t('age.d', { n: Math.floor(seconds / 86400) });
}
