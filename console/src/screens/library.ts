import {
  ApiError, createFolder, deleteMedia, KIND_LABELS, KINDS, listFolders, listMedia, moveToFolder, type Folder, type ListParams, type Media,
} from '../api.js';
import { isSelected, setSelected } from '../selection.js';
import { announce, button, copyText, countdownEl, dialog, formatBytes, formatDate, formatDuration, h, kindIcon, setButtonText, statusBadge, waveformEl } from '../ui.js';

const PAGE_SIZE = 12;
const SORTS: Record<string, { label: string; sortBy: ListParams['sortBy']; sortOrder: ListParams['sortOrder'] }> = {
  newest: { label: 'Newest first', sortBy: 'createdAt', sortOrder: 'desc' },
  oldest: { label: 'Oldest first', sortBy: 'createdAt', sortOrder: 'asc' },
  'name-asc': { label: 'Name A–Z', sortBy: 'name', sortOrder: 'asc' },
  'name-desc': { label: 'Name Z–A', sortBy: 'name', sortOrder: 'desc' },
  largest: { label: 'Largest first', sortBy: 'sizeBytes', sortOrder: 'desc' },
  smallest: { label: 'Smallest first', sortBy: 'sizeBytes', sortOrder: 'asc' },
};

interface State {
  page: number;
  sort: string;
  kind: string;
  status: string;
  folderId: string;
  q: string;
}

const state: State = { page: 0, sort: 'newest', kind: '', status: '', folderId: '', q: '' };

export function displayName(m: Media): string {
  return m.name ?? m.originalName ?? m.id;
}

/** The media library: filters, sort, search, pages, previews, temporary URLs, folders, delete. */
export async function renderLibrary(root: HTMLElement): Promise<() => void> {
  const focusId = new URLSearchParams(location.hash.split('?')[1] ?? '').get('focus');
  let folders: Folder[] = await listFolders().catch(() => []);

  const search = h('input', { id: 'f-q', type: 'search', value: state.q, autocomplete: 'off' });
  const kind = h('select', { id: 'f-kind' }, h('option', { value: '' }, 'All kinds'), ...KINDS.map((k) => h('option', { value: k, selected: state.kind === k }, KIND_LABELS[k])));
  const status = h(
    'select',
    { id: 'f-status' },
    h('option', { value: '' }, 'Any status'),
    ...['queued', 'processing', 'ready', 'failed'].map((s) => h('option', { value: s, selected: state.status === s }, s[0]!.toUpperCase() + s.slice(1))),
  );
  const folder = h('select', { id: 'f-folder' });
  const sort = h('select', { id: 'f-sort' }, ...Object.entries(SORTS).map(([k, v]) => h('option', { value: k, selected: state.sort === k }, v.label)));
  const fillFolders = () => {
    folder.replaceChildren(h('option', { value: '' }, 'All folders'), ...folders.map((f) => h('option', { value: f.id, selected: state.folderId === f.id }, f.name)));
  };
  fillFolders();

  const filters = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter the library' },
    field('f-q', 'Search by name', search),
    field('f-kind', 'Kind', kind),
    field('f-status', 'Status', status),
    field('f-folder', 'Folder', folder),
    field('f-sort', 'Sort', sort),
    h('button', { type: 'submit', class: 'btn' }, 'Apply'),
  );
  const newFolderName = h('input', { id: 'new-folder', type: 'text', maxlength: 100, autocomplete: 'off' });
  const folderForm = h(
    'form',
    { class: 'folder-form' },
    field('new-folder', 'New folder', newFolderName),
    h('button', { type: 'submit', class: 'btn' }, 'Create folder'),
  );
  const summary = h('p', { class: 'muted', id: 'library-summary', 'aria-live': 'polite' });
  const grid = h('ul', { class: 'media-grid', 'aria-labelledby': 'library-title' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });

  root.append(
    h('div', { class: 'title-row' }, h('h1', { id: 'library-title' }, 'Library'), h('a', { class: 'btn btn-primary', href: '#/upload' }, 'Upload')),
    filters,
    folderForm,
    summary,
    grid,
    pager,
  );

  let alive = true;
  async function load(focusFirst = false): Promise<void> {
    const s = SORTS[state.sort] ?? SORTS.newest!;
    summary.textContent = 'Loading…';
    let items: Media[];
    let total: number;
    try {
      ({ items, total } = await listMedia({ page: state.page, limit: PAGE_SIZE, sortBy: s.sortBy, sortOrder: s.sortOrder, kind: state.kind || undefined, status: state.status || undefined, folderId: state.folderId || undefined, q: state.q || undefined }));
    } catch (err) {
      summary.textContent = `Could not load the library: ${(err as Error).message}`;
      return;
    }
    if (!alive) return;
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    if (state.page >= pages && state.page > 0) {
      state.page = pages - 1;
      return load(focusFirst);
    }
    const filtered = Boolean(state.q || state.kind || state.status || state.folderId);
    summary.textContent =
      total === 0
        ? filtered ? 'No media matches these filters.' : 'Nothing here yet: upload media or record a voice note.'
        : `${total} media${pages > 1 ? ` · page ${state.page + 1} of ${pages}` : ''}`;
    grid.replaceChildren(...items.map((m) => card(m)));
    const prev = h('button', { type: 'button', class: 'btn', disabled: state.page === 0 }, 'Previous page');
    const next = h('button', { type: 'button', class: 'btn', disabled: state.page + 1 >= pages }, 'Next page');
    prev.addEventListener('click', () => {
      state.page--;
      void load(true);
    });
    next.addEventListener('click', () => {
      state.page++;
      void load(true);
    });
    if (pages > 1) pager.replaceChildren(prev, h('span', {}, `Page ${state.page + 1} of ${pages}`), next);
    else pager.replaceChildren();
    if (focusFirst) grid.querySelector<HTMLElement>('h3')?.focus();
    if (focusId) {
      const el = grid.querySelector<HTMLElement>(`[data-id="${CSS.escape(focusId)}"] h3`);
      el?.focus();
      el?.scrollIntoView({ block: 'center' });
    }
  }

  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    Object.assign(state, { page: 0, q: search.value.trim(), kind: kind.value, status: status.value, folderId: folder.value, sort: sort.value });
    void load();
  });
  for (const sel of [kind, status, folder, sort]) sel.addEventListener('change', () => filters.requestSubmit());
  folderForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = newFolderName.value.trim();
    if (!name) {
      newFolderName.focus();
      announce('Type a folder name first');
      return;
    }
    try {
      const f = await createFolder(name);
      folders = [...folders, f];
      fillFolders();
      newFolderName.value = '';
      announce(`Folder ${f.name} created`);
      void load();
    } catch (err) {
      announce(`Could not create the folder: ${(err as Error).message}`);
    }
  });

  function card(m: Media): HTMLLIElement {
    const title = displayName(m);
    const titleId = `t-${m.id}`;
    const li = h('li', { class: 'media-card', 'data-id': m.id, 'data-kind': m.kind ?? '', 'data-status': m.status, 'aria-labelledby': titleId });
    li.append(preview(m, title));
    const body = h('div', { class: 'media-body' });
    body.append(
      h('h3', { id: titleId, tabindex: -1, title }, title),
      h('p', { class: 'meta' }, statusBadge(m.status), ` ${m.kind ? KIND_LABELS[m.kind] : 'Kind pending'} · ${formatBytes(m.sizeBytes)}`, m.durationMs ? ` · ${formatDuration(m.durationMs)}` : '', m.width && m.height ? ` · ${m.width}×${m.height}` : ''),
      h('p', { class: 'meta' }, countdownEl(m.expiresAt)),
    );
    if (m.references && m.references.count > 0) body.append(h('p', { class: 'meta' }, `Needed by ${m.references.count} scheduled send${m.references.count > 1 ? 's' : ''}${m.references.nextSendAt ? `, next ${formatDate(m.references.nextSendAt)}` : ''}`));
    if (m.status === 'failed' && m.error) body.append(h('p', { class: 'error-text' }, `${m.error.message}`));
    const actions = h('div', { class: 'row-actions' });
    if (m.url) {
      const copy = button('Copy URL', `(temporary URL of ${title})`);
      copy.addEventListener('click', async () => {
        const ok = await copyText(m.url!);
        setButtonText(copy, ok ? 'Copied' : 'Copy failed');
        announce(ok ? `Temporary URL of ${title} copied` : 'Copy failed');
        window.setTimeout(() => setButtonText(copy, 'Copy URL'), 2000);
      });
      actions.append(copy);
    }
    const moveId = `move-${m.id}`;
    const move = h('select', { id: moveId }, h('option', { value: '' }, 'No folder'), ...folders.map((f) => h('option', { value: f.id, selected: m.folderId === f.id }, f.name)));
    move.addEventListener('change', async () => {
      try {
        await moveToFolder(m.id, move.value || null);
        announce(`${title} moved to ${move.value ? move.selectedOptions[0]!.text : 'no folder'}`);
      } catch (err) {
        announce(`Could not move ${title}: ${(err as Error).message}`);
        move.value = m.folderId ?? '';
      }
    });
    const selId = `sel-${m.id}`;
    const sel = h('input', { type: 'checkbox', id: selId, checked: isSelected(m.id) });
    sel.addEventListener('change', () => {
      setSelected(m.id, sel.checked);
      announce(sel.checked ? `${title} added to the schedule check` : `${title} removed from the schedule check`);
    });
    const del = button('Delete', title, 'btn btn-small btn-danger');
    del.addEventListener('click', () => void confirmDelete(m, title));
    actions.append(
      h('span', { class: 'field field-inline' }, h('label', { for: moveId }, 'Folder'), move),
      h('span', { class: 'check' }, sel, h('label', { for: selId }, 'Schedule check')),
      del,
    );
    body.append(actions);
    li.append(body);
    return li;
  }

  async function confirmDelete(m: Media, title: string): Promise<void> {
    const choice = await dialog(`Delete ${title}?`, h('p', {}, 'The file is removed from storage and its temporary URL stops working. This cannot be undone.'), [
      { label: 'Cancel', value: 'cancel', kind: 'quiet' },
      { label: 'Delete', value: 'delete', kind: 'danger' },
    ]);
    if (choice !== 'delete') return;
    try {
      await deleteMedia(m.id);
      announce(`${title} deleted`);
      void load();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'MEDIA_IN_USE') {
        const refs = sendsOf(err.details);
        const again = await dialog(
          `${title} is needed by scheduled sends`,
          [
            h('p', {}, 'Deleting it now would break these scheduled sends:'),
            h('ul', { class: 'refs' }, ...refs.map((r) => h('li', {}, h('code', {}, r.ref), r.sendAt ? ` · sends ${formatDate(r.sendAt)}` : ''))),
            h('p', {}, 'Keep it, or delete it anyway (those sends will go out without it).'),
          ],
          [
            { label: 'Keep it', value: 'keep', kind: 'quiet' },
            { label: 'Delete anyway', value: 'force', kind: 'danger' },
          ],
        );
        if (again === 'force') {
          try {
            await deleteMedia(m.id, true);
            announce(`${title} deleted`);
            void load();
          } catch (e) {
            announce(`Could not delete ${title}: ${(e as Error).message}`);
          }
        }
        return;
      }
      announce(`Could not delete ${title}: ${(err as Error).message}`);
      await dialog('Could not delete', h('p', {}, (err as Error).message), [{ label: 'OK', value: 'ok', kind: 'primary' }]);
    }
  }

  await load();
  return () => {
    alive = false;
  };
}

/** The scheduled sends a MEDIA_IN_USE refusal names: `details.references` ([{ref, sendAt}]), else `details.refs`. */
function sendsOf(details: unknown): Array<{ ref: string; sendAt?: string }> {
  const d = (details ?? {}) as { references?: unknown; refs?: unknown };
  const list = Array.isArray(d.references) ? d.references : Array.isArray(d.refs) ? d.refs : [];
  return list
    .map((r: unknown) => (typeof r === 'string' ? { ref: r } : (r as { ref?: unknown; sendAt?: unknown })))
    .filter((r): r is { ref: string; sendAt?: string } => typeof r.ref === 'string')
    .map((r) => ({ ref: r.ref, sendAt: typeof r.sendAt === 'string' ? r.sendAt : undefined }));
}

function field(id: string, label: string, control: HTMLElement): HTMLElement {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

/** A thumbnail, poster, inline player, waveform or icon for a media. */
function preview(m: Media, title: string): HTMLElement {
  const box = h('div', { class: 'media-preview' });
  if (m.status !== 'ready' || !m.url) {
    box.append(kindIcon(m.kind), h('span', { class: 'preview-note' }, m.status === 'failed' ? 'Failed' : 'Processing…'));
    return box;
  }
  switch (m.kind) {
    case 'image':
    case 'sticker':
      box.append(h('img', { src: m.url, alt: title, loading: 'lazy', decoding: 'async' }));
      break;
    case 'video': {
      const hasPoster = m.variants?.some((v) => v.name === 'poster');
      const poster = hasPoster ? `/v1/media/${encodeURIComponent(m.id)}/poster` : null;
      const video = h('video', { controls: true, preload: 'none', src: m.url, 'aria-label': `Video: ${title}`, poster: poster ?? undefined, playsinline: true });
      box.append(video);
      if (!hasPoster) box.append(h('span', { class: 'preview-note' }, 'No poster frame'));
      break;
    }
    case 'audio':
    case 'voice_note':
      box.classList.add('media-preview-audio');
      if (m.waveform?.length) box.append(waveformEl(m.waveform, `Waveform of ${title}`));
      else box.append(kindIcon(m.kind));
      box.append(h('audio', { controls: true, preload: 'metadata', src: m.url, 'aria-label': `Play ${title}` }));
      break;
    default:
      box.append(kindIcon(m.kind), h('span', { class: 'preview-note' }, m.mimeType === 'application/pdf' ? 'PDF' : (m.mimeType ?? 'Document')));
  }
  return box;
}
