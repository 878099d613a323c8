/** Media picked in the library for the schedule check, kept for this tab. */
const KEY = 'mediaflow.console.selection';

export function selected(): string[] {
  try {
    const v = JSON.parse(sessionStorage.getItem(KEY) ?? '[]') as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

export function setSelected(id: string, on: boolean): void {
  const s = new Set(selected());
  if (on) s.add(id);
  else s.delete(id);
  sessionStorage.setItem(KEY, JSON.stringify([...s]));
}

export function isSelected(id: string): boolean {
  return selected().includes(id);
}
