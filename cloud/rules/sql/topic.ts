/** MQTT topic-filter matching for rule FROM clauses (MQTT 3.1.1 section 4.7). */

/** Whether `topic` matches `filter` (`+` one level, `#` the rest); `$` topics only match explicit filters. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const part = f[i]!;
    if (part === '#') return true;
    if (i >= t.length) return false;
    if (part !== '+' && part !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Whether a FROM filter is a valid MQTT topic filter. */
export function isValidFilter(filter: string): boolean {
  if (filter.length === 0) return false;
  const parts = filter.split('/');
  return parts.every((p, i) => {
    if (p === '#') return i === parts.length - 1;
    if (p === '+') return true;
    return !p.includes('#') && !p.includes('+');
  });
}
