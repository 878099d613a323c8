import type { Kind } from './api.js';

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** A tiny element builder: attributes (`on…` become listeners), then children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
    else if (k === 'class') el.className = String(v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el: Element): void {
  while (el.firstChild) el.firstChild.remove();
}

/** Says something to screen-reader users (the polite live region). */
export function announce(message: string): void {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  window.setTimeout(() => (region.textContent = message), 30);
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (!ms) return '';
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** "in 29 d 23 h", "in 4 h 12 min", "in 3 min 05 s", or "expired". */
export function countdown(iso: string, now = Date.now()): string {
  const left = Date.parse(iso) - now;
  if (!(left > 0)) return 'expired';
  const s = Math.floor(left / 1000);
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const min = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `in ${d} d ${hr} h ${String(min).padStart(2, '0')} min`;
  if (hr > 0) return `in ${hr} h ${String(min).padStart(2, '0')} min`;
  return `in ${min} min ${String(sec).padStart(2, '0')} s`;
}

export function formatDate(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** An element that counts down to `iso`, kept current by one timer for the whole page. */
export function countdownEl(iso: string, prefix = 'Expires'): HTMLElement {
  const el = h('time', { datetime: iso, 'data-countdown': iso, 'data-prefix': prefix, title: formatDate(iso) });
  el.textContent = `${prefix} ${countdown(iso)}`;
  return el;
}

let ticking = false;
export function startCountdowns(): void {
  if (ticking) return;
  ticking = true;
  window.setInterval(() => {
    for (const el of document.querySelectorAll<HTMLElement>('[data-countdown]')) {
      el.textContent = `${el.dataset.prefix ?? 'Expires'} ${countdown(el.dataset.countdown!)}`;
    }
  }, 1000);
}

/** The kind a file most likely is, from its type and size; the person can change it. */
export function suggestKind(type: string, name: string, size: number): Kind {
  const t = type.toLowerCase();
  const ext = name.toLowerCase().split('.').pop() ?? '';
  if (t === 'image/webp' && size <= 500 * 1024 && /sticker/i.test(name)) return 'sticker';
  if (t.startsWith('image/') || ['jpg', 'jpeg', 'png', 'gif', 'webp', 'heic', 'heif', 'avif', 'tif', 'tiff', 'bmp'].includes(ext)) return 'image';
  if (t.startsWith('video/') || ['mp4', 'mov', 'webm', 'mkv', 'avi', '3gp'].includes(ext)) return 'video';
  if (['opus', 'amr'].includes(ext) || /ogg|opus|amr/.test(t)) return 'voice_note';
  if (t.startsWith('audio/') || ['mp3', 'm4a', 'aac', 'wav', 'flac', 'oga'].includes(ext)) return 'audio';
  return 'document';
}

const ICON_PATHS: Record<Kind | 'unknown', string> = {
  image: 'M4 5h16v14H4z M4 16l5-5 4 4 3-3 4 4 M15 9.5a1.5 1.5 0 1 0 0.01 0',
  video: 'M3 6h13v12H3z M16 10l5-3v10l-5-3',
  audio: 'M9 18V6l10-2v12 M9 18a3 3 0 1 1-3-3 3 3 0 0 1 3 3z M19 16a3 3 0 1 1-3-3 3 3 0 0 1 3 3z',
  voice_note: 'M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3z M5 11a7 7 0 0 0 14 0 M12 18v3',
  document: 'M6 3h8l4 4v14H6z M14 3v4h4 M9 12h6 M9 16h6',
  sticker: 'M4 4h11l5 5v11H4z M15 4v5h5 M9 14a3 3 0 0 0 6 0',
  unknown: 'M4 4h16v16H4z',
};

/** A line icon for a kind (decorative: the kind is always also said in words). */
export function kindIcon(kind: Kind | null): SVGSVGElement {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.classList.add('kind-icon');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', ICON_PATHS[kind ?? 'unknown']);
  svg.append(path);
  return svg;
}

/** A waveform (bars 0..100) as an SVG, with a text alternative. */
export function waveformEl(bars: number[], label = 'Waveform of the voice note'): SVGSVGElement {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  const w = bars.length * 4;
  svg.setAttribute('viewBox', `0 0 ${w} 40`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.classList.add('waveform');
  bars.forEach((v, i) => {
    const height = Math.max(2, (Math.min(100, Math.max(0, v)) / 100) * 38);
    const r = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    r.setAttribute('x', String(i * 4 + 0.5));
    r.setAttribute('y', String(20 - height / 2));
    r.setAttribute('width', '3');
    r.setAttribute('height', String(height));
    r.setAttribute('rx', '1');
    svg.append(r);
  });
  return svg;
}

/**
 * A modal dialog (the native <dialog>: focus moves in, Escape closes, focus returns to the opener).
 * Resolves with the chosen action's value, or null when closed.
 */
export function dialog<T extends string>(title: string, body: Child | Child[], actions: Array<{ label: string; value: T; kind?: 'danger' | 'primary' | 'quiet' }>): Promise<T | null> {
  return new Promise((resolve) => {
    const opener = document.activeElement as HTMLElement | null;
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const d = h('dialog', { class: 'dialog', 'aria-labelledby': titleId });
    const buttons = actions.map((a) =>
      h('button', { type: 'button', class: `btn ${a.kind ? `btn-${a.kind}` : ''}`, onclick: () => finish(a.value) }, a.label),
    );
    append(d, h('h2', { id: titleId }, title), h('div', { class: 'dialog-body' }, ...(Array.isArray(body) ? body : [body])), h('div', { class: 'dialog-actions' }, ...buttons));
    let done = false;
    const finish = (v: T | null) => {
      if (done) return;
      done = true;
      d.close();
      d.remove();
      opener?.focus();
      resolve(v);
    };
    d.addEventListener('cancel', (e) => {
      e.preventDefault();
      finish(null);
    });
    document.body.append(d);
    d.showModal();
    // The least destructive action takes focus first.
    (buttons.find((_, i) => actions[i]!.kind === 'quiet') ?? buttons[0])?.focus();
  });
}

/** Copies text, with a fallback for browsers without the async clipboard. */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { class: 'visually-hidden', 'aria-hidden': 'true' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

/** A button whose accessible name is its visible text plus words only screen readers need ("Delete" + " photo.jpg"). */
export function button(text: string, more: string, cls = 'btn btn-small'): HTMLButtonElement {
  const b = h('button', { type: 'button', class: cls }, h('span', { class: 'btn-text' }, text));
  if (more) b.append(h('span', { class: 'visually-hidden' }, ` ${more}`));
  return b;
}

/** Sets a button's visible text, keeping its hidden words. */
export function setButtonText(b: HTMLButtonElement, text: string): void {
  const t = b.querySelector('.btn-text');
  if (t) t.textContent = text;
  else b.textContent = text;
}

export function statusBadge(status: string): HTMLElement {
  const labels: Record<string, string> = { queued: 'Queued', processing: 'Processing', ready: 'Ready', failed: 'Failed', deleted: 'Deleted' };
  return h('span', { class: `badge badge-${status}` }, labels[status] ?? status);
}

/** Focus the screen's heading after navigation, so keyboard and screen-reader users start there. */
export function focusHeading(root: Element): void {
  const heading = root.querySelector<HTMLElement>('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: false });
  }
}
