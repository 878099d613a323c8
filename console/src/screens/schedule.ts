import { addReference, ApiError, extendMedia, getMedia, KIND_LABELS, listMedia, type Media } from '../api.js';
import { isSelected, setSelected } from '../selection.js';
import { announce, button, countdownEl, formatDate, h, kindIcon } from '../ui.js';
import { displayName } from './library.js';

/** How long past the send a media is kept when extended for it (API.md: REFERENCE_GRACE_SECONDS' default). */
const GRACE_SECONDS = 86_400;
const REF_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

function localInputValue(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * The schedule check: pick when a message or campaign goes out; each picked media says whether it
 * will still be there (the API's EXPIRES_BEFORE_SCHEDULE warning), with one click to extend it or
 * to reserve it for that send (a reference with extend).
 */
export async function renderSchedule(root: HTMLElement): Promise<void> {
  const tomorrow = new Date(Date.now() + 86_400_000);
  tomorrow.setMinutes(0, 0, 0);
  const when = h('input', { id: 'send-at', type: 'datetime-local', value: localInputValue(tomorrow), required: true, 'aria-describedby': 'send-at-help' });
  const ref = h('input', { id: 'send-ref', type: 'text', maxlength: 128, autocomplete: 'off', placeholder: 'e.g. campaign-2027-01', 'aria-describedby': 'send-ref-help' });
  const formError = h('p', { class: 'form-error', role: 'alert' });
  const form = h(
    'form',
    { class: 'card schedule-form' },
    h('div', { class: 'field' }, h('label', { for: 'send-at' }, 'When does the message or campaign go out?'), when, h('p', { id: 'send-at-help', class: 'help' }, 'Your local time.')),
    h('div', { class: 'field' }, h('label', { for: 'send-ref' }, 'Name of the send (optional)'), ref, h('p', { id: 'send-ref-help', class: 'help' }, 'Used when you reserve media for it: letters, digits and . _ : -')),
    formError,
    h('button', { type: 'submit', class: 'btn btn-primary' }, 'Check'),
  );
  const pickList = h('ul', { class: 'pick-list' });
  const results = h('ul', { class: 'schedule-results', 'aria-live': 'polite' });
  const resultsTitle = h('h2', { id: 'results-title', tabindex: -1 }, 'At that time');
  root.append(
    h('h1', {}, 'Schedule check'),
    h('p', { class: 'muted' }, 'Media is kept for a limited time. Pick when your message goes out to see whether each media will still be there, and extend it if not.'),
    form,
    h('section', { 'aria-labelledby': 'pick-title' }, h('h2', { id: 'pick-title' }, 'Media to check'), pickList),
    h('section', { 'aria-labelledby': 'results-title' }, resultsTitle, results),
  );

  // Picked in the library first, then the latest ready media to pick from.
  const { items } = await listMedia({ page: 0, limit: 50, sortBy: 'createdAt', sortOrder: 'desc', status: 'ready' }).catch(() => ({ items: [] as Media[] }));
  if (items.length === 0) pickList.append(h('li', { class: 'muted' }, 'No ready media yet. Upload some first.'));
  const byId = new Map(items.map((m) => [m.id, m]));
  for (const m of items) {
    const id = `pick-${m.id}`;
    const box = h('input', { type: 'checkbox', id, checked: isSelected(m.id) });
    box.addEventListener('change', () => {
      setSelected(m.id, box.checked);
      void check();
    });
    pickList.append(h('li', { class: 'check' }, box, h('label', { for: id }, kindIcon(m.kind), ` ${displayName(m)} `, h('span', { class: 'muted' }, `(${m.kind ? KIND_LABELS[m.kind] : ''})`))));
  }

  function sendAt(): Date | null {
    const d = when.value ? new Date(when.value) : null;
    return d && !Number.isNaN(d.getTime()) ? d : null;
  }

  function refName(at: Date): string {
    const given = ref.value.trim();
    return given || `console-${at.toISOString().slice(0, 16).replace(/[-:]/g, '')}`;
  }

  async function check(): Promise<void> {
    formError.textContent = '';
    const at = sendAt();
    if (!at) {
      formError.textContent = 'Pick a date and time.';
      return;
    }
    if (ref.value.trim() && !REF_PATTERN.test(ref.value.trim())) {
      formError.textContent = 'The name of the send may use letters, digits and . _ : - only.';
      ref.focus();
      return;
    }
    const ids = items.filter((m) => isSelected(m.id)).map((m) => m.id);
    if (ids.length === 0) {
      results.replaceChildren(h('li', { class: 'muted' }, 'Pick at least one media above.'));
      return;
    }
    const rows = await Promise.all(ids.map((id) => getMedia(id, at.toISOString()).catch((err: Error) => ({ id, error: err }) as const)));
    results.replaceChildren(...rows.map((m) => ('error' in m && m.error instanceof Error ? errorRow(byId.get(m.id), m.error) : resultRow(m as Media, at))));
    const late = rows.filter((m) => !('error' in m && m.error instanceof Error) && (m as Media).warnings?.includes('EXPIRES_BEFORE_SCHEDULE')).length;
    announce(late ? `${late} of ${rows.length} media will have expired by then` : `All ${rows.length} media will still be there`);
  }

  function errorRow(m: Media | undefined, err: Error): HTMLLIElement {
    const gone = err instanceof ApiError && (err.status === 404 || err.status === 410);
    return h('li', { class: 'result result-late' }, h('strong', {}, m ? displayName(m) : 'A media'), ` ${gone ? 'is gone already.' : `could not be checked: ${err.message}`}`);
  }

  function resultRow(m: Media, at: Date): HTMLLIElement {
    const late = m.warnings?.includes('EXPIRES_BEFORE_SCHEDULE') ?? Date.parse(m.expiresAt) <= at.getTime();
    const li = h('li', { class: `result ${late ? 'result-late' : 'result-ok'}`, 'data-id': m.id });
    const verdict = late
      ? h('p', { class: 'verdict verdict-late' }, h('strong', {}, 'Will have expired by then.'), ` It expires ${formatDate(m.expiresAt)}; the send is ${formatDate(at.toISOString())}.`)
      : h('p', { class: 'verdict verdict-ok' }, h('strong', {}, 'Still available then.'), ` It expires ${formatDate(m.expiresAt)}.`);
    const actions = h('div', { class: 'row-actions' });
    const note = h('p', { class: 'help', 'aria-live': 'polite' });
    const ttl = Math.ceil((at.getTime() - Date.now()) / 1000) + GRACE_SECONDS;
    if (late) {
      const extend = button('Extend', `${displayName(m)} past the send`, 'btn btn-primary btn-small');
      extend.addEventListener('click', async () => {
        extend.disabled = true;
        try {
          const updated = await extendMedia(m.id, ttl);
          if (Date.parse(updated.expiresAt) <= at.getTime()) note.textContent = `Extended to ${formatDate(updated.expiresAt)}, the longest this service keeps media: still before the send.`;
          await check();
          announce(`${displayName(m)} extended`);
        } catch (err) {
          note.textContent = `Could not extend: ${(err as Error).message}`;
          extend.disabled = false;
        }
      });
      actions.append(extend);
    }
    const reserve = button(late ? 'Reserve for this send and extend' : 'Reserve for this send', `(${displayName(m)})`);
    reserve.addEventListener('click', async () => {
      reserve.disabled = true;
      try {
        const r = await addReference(m.id, refName(at), at.toISOString(), true);
        note.textContent = `Reserved for ${r.reference.ref}: it cannot be deleted by mistake before the send.${r.warnings.includes('RETENTION_CAP_REACHED') ? ' The longest this service keeps media ends before the send.' : ''}`;
        await check();
        announce(`${displayName(m)} reserved for ${r.reference.ref}`);
      } catch (err) {
        note.textContent = err instanceof ApiError && err.status === 404 && err.message.startsWith('no route') ? 'This service does not take scheduled-send reservations yet; use Extend.' : `Could not reserve: ${(err as Error).message}`;
        reserve.disabled = false;
      }
    });
    actions.append(reserve);
    li.append(
      h('div', { class: 'result-head' }, kindIcon(m.kind), h('strong', {}, displayName(m)), h('span', { class: 'muted' }, ' · '), countdownEl(m.expiresAt)),
      verdict,
      m.references?.count ? h('p', { class: 'help' }, `Reserved by ${m.references.count} scheduled send${m.references.count > 1 ? 's' : ''}.`) : '',
      actions,
      note,
    );
    return li;
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void check().then(() => resultsTitle.focus());
  });
  when.addEventListener('change', () => void check());
  await check();
}
