/** MQTT topic filter matching (`+` one level, `#` the rest), for dispatching messages to handlers. */

/** Whether `topic` matches the MQTT topic filter `filter`. */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  // Wildcards at the first level do not match topics beginning with `$` (MQTT 3.1.1, 4.7.2).
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
