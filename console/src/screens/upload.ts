import Uppy, { type UppyFile } from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import Tus from '@uppy/tus';
import XHRUpload from '@uppy/xhr-upload';
import '@uppy/core/css/style.min.css';
import '@uppy/dashboard/css/style.min.css';
import { csrf, KIND_LABELS, KINDS, tusAvailable, waitSettled, type Kind, type Media } from '../api.js';
import { announce, button, copyText, formatBytes, h, setButtonText, statusBadge, suggestKind } from '../ui.js';

type Meta = { kind: Kind };
type Body = { data?: { id: string; status?: string }; error?: { code: string; message: string } };

/** The largest input any kind takes (API.md: the hard cap). */
const HARD_CAP = 100_000_000;

/**
 * Upload: Uppy's dashboard (drag and drop, several files, progress, retry) sends each file with
 * the kind the person chose (suggested from the file) through the resumable tus endpoint when the
 * service has one, else through the dashboard upload route; each file then shows its processing
 * until it is ready or failed, with the error's message.
 */
export async function renderUpload(root: HTMLElement, _session?: unknown): Promise<() => void> {
  const useTus = await tusAvailable();
  const list = h('ol', { class: 'upload-list', 'aria-live': 'polite' });
  const target = h('div', { class: 'uppy-target' });
  root.append(
    h('h1', {}, 'Upload media'),
    h(
      'p',
      { class: 'muted' },
      'Drop files or browse. Each file’s kind is suggested from the file; change it below before you press Upload. ',
      useTus ? 'Files go through resumable uploads, so a dropped connection picks up where it stopped.' : 'Files up to 100 MB.',
    ),
    target,
    h('h2', {}, 'Files'),
    list,
  );

  const uppy = new Uppy<Meta, Body>({ restrictions: { maxFileSize: HARD_CAP }, autoProceed: false });
  uppy.use(Dashboard, {
    inline: true,
    target,
    width: '100%',
    height: 340,
    proudlyDisplayPoweredByUppy: false,
    hideProgressDetails: false,
    hideCancelButton: false,
    note: 'Images, video, audio, voice notes, documents and stickers; up to 100 MB each.',
    theme: 'light',
  });
  const mediaIds = new Map<string, string>();
  if (useTus) {
    uppy.use(Tus, {
      endpoint: '/v1/uploads/tus',
      headers: () => ({ 'x-csrf-token': csrf() }),
      allowedMetaFields: ['name', 'type', 'kind'],
      chunkSize: 8 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000],
      onAfterResponse: (req, res) => {
        const id = res.getHeader('Media-Id');
        if (id) mediaIds.set(req.getURL(), id);
      },
    });
  } else {
    uppy.use(XHRUpload, {
      endpoint: '/api/media/upload',
      fieldName: 'file',
      formData: true,
      allowedMetaFields: ['kind'],
      headers: () => ({ 'x-csrf-token': csrf() }),
      limit: 2,
      timeout: 120_000,
      shouldRetry: () => false,
    });
  }

  const rows = new Map<string, { li: HTMLLIElement; state: HTMLElement; select: HTMLSelectElement; extra: HTMLElement }>();
  const setState = (fileId: string, text: string | Node, extra?: Node) => {
    const row = rows.get(fileId);
    if (!row) return;
    row.state.replaceChildren(text);
    if (extra) row.extra.replaceChildren(extra);
  };

  uppy.on('file-added', (file) => {
    const kind = suggestKind(file.type ?? '', file.name ?? '', file.size ?? 0);
    uppy.setFileMeta(file.id, { kind });
    const selectId = `kind-${file.id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const select = h('select', { id: selectId }, ...KINDS.map((k) => h('option', { value: k, selected: k === kind }, KIND_LABELS[k])));
    select.addEventListener('change', () => uppy.setFileMeta(file.id, { kind: select.value as Kind }));
    const state = h('span', { class: 'file-state' }, 'Waiting to upload');
    const extra = h('div', { class: 'file-extra' });
    const li = h(
      'li',
      { class: 'upload-row', 'data-file': file.name ?? '' },
      h('div', { class: 'upload-name' }, h('strong', {}, file.name ?? 'file'), h('span', { class: 'muted' }, ` · ${formatBytes(file.size ?? null)}`)),
      h('div', { class: 'field field-inline' }, h('label', { for: selectId }, 'Kind'), select),
      state,
      extra,
    );
    rows.set(file.id, { li, state, select, extra });
    list.append(li);
  });
  uppy.on('file-removed', (file) => {
    rows.get(file.id)?.li.remove();
    rows.delete(file.id);
  });
  uppy.on('upload', () => {
    for (const r of rows.values()) r.select.disabled = true;
  });
  uppy.on('upload-progress', (file, progress) => {
    if (!file || !progress.bytesTotal) return;
    const pct = Math.floor(((progress.bytesUploaded ?? 0) / progress.bytesTotal) * 100);
    setState(file.id, pct >= 100 ? 'Sent; processing…' : `Sending… ${pct}% (${formatBytes(progress.bytesUploaded ?? 0)} of ${formatBytes(progress.bytesTotal)})`);
  });
  uppy.on('upload-success', (file, response) => {
    if (!file) return;
    const id = response.body?.data?.id ?? (response.uploadURL ? mediaIds.get(response.uploadURL) : undefined);
    if (!id) {
      setState(file.id, 'Sent, but the service did not say which media it became.');
      return;
    }
    setState(file.id, h('span', {}, statusBadge('processing')));
    void follow(file, id);
  });
  uppy.on('upload-error', (file, error, response) => {
    if (!file) return;
    const msg = errorMessage(error, response?.body as Body | undefined);
    setState(file.id, h('span', { class: 'failed' }, statusBadge('failed'), ` ${msg}`));
    announce(`${file.name} failed: ${msg}`);
  });

  async function follow(file: UppyFile<Meta, Body>, id: string): Promise<void> {
    const m = await waitSettled(id, (cur) => {
      if (cur.status === 'processing' || cur.status === 'queued') {
        setState(file.id, h('span', {}, statusBadge(cur.status), cur.progress !== undefined ? ` ${cur.progress}%` : ''));
      }
    }).catch((err: Error) => ({ status: 'failed', error: { code: 'NETWORK', message: err.message } }) as Media);
    if (m.status === 'ready') {
      setState(file.id, h('span', { class: 'ready' }, statusBadge('ready'), ` ${KIND_LABELS[m.kind ?? 'document']} · ${formatBytes(m.sizeBytes)}`), readyExtras(m));
      announce(`${file.name} is ready`);
    } else {
      const msg = m.error?.message ?? `ended ${m.status}`;
      setState(file.id, h('span', { class: 'failed' }, statusBadge('failed'), ` ${msg}`));
      announce(`${file.name} failed: ${msg}`);
    }
  }

  return () => uppy.destroy();
}

/**
 * The service's own words for a refused upload: the error envelope's message, from the response
 * body (dashboard upload) or from inside tus-js-client's error text ("… response text: {…} …").
 */
function errorMessage(error: Error, body: Body | undefined): string {
  if (body?.error?.message) return body.error.message;
  const m = /response text: (\{.*\}), request id/s.exec(error.message);
  if (m) {
    try {
      const parsed = JSON.parse(m[1]!) as Body;
      if (parsed.error?.message) return parsed.error.message;
    } catch {
      // not JSON: fall through to the generic message
    }
  }
  return /network|failed to fetch/i.test(error.message) ? 'The connection was lost; press Retry.' : error.message;
}

function readyExtras(m: Media): Node {
  const wrap = h('div', { class: 'row-actions' });
  if (m.url) {
    const copy = button('Copy temporary URL', `of ${m.originalName ?? m.id}`);
    copy.addEventListener('click', async () => {
      const ok = await copyText(m.url!);
      setButtonText(copy, ok ? 'Copied' : 'Copy failed');
      announce(ok ? 'Copied' : 'Copy failed');
      window.setTimeout(() => setButtonText(copy, 'Copy temporary URL'), 2000);
    });
    wrap.append(copy);
  }
  wrap.append(h('a', { href: `#/library?focus=${encodeURIComponent(m.id)}`, class: 'btn btn-small btn-quiet' }, 'See it in the library'));
  return wrap;
}
