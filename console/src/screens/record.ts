import { ApiError, dashboardUpload, waitSettled } from '../api.js';
import { announce, countdownEl, formatDuration, h, statusBadge, waveformEl } from '../ui.js';

const MAX_SECONDS = 15 * 60;

/** Record a voice note with the microphone (MediaRecorder), upload it as `voice_note`, show its waveform. */
export function renderRecord(root: HTMLElement): () => void {
  const start = h('button', { type: 'button', class: 'btn btn-primary', id: 'record-start' }, 'Start recording');
  const stop = h('button', { type: 'button', class: 'btn', id: 'record-stop', disabled: true }, 'Stop');
  const timer = h('span', { class: 'timer', role: 'timer', 'aria-label': 'Recording time' }, '0:00');
  const status = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Press Start recording, speak, then press Stop.');
  const result = h('div', { class: 'record-result' });
  root.append(
    h('h1', {}, 'Record a voice note'),
    h('p', { class: 'muted' }, 'Your browser asks for the microphone the first time. The note is sent as a voice note and converted for messaging apps.'),
    h('div', { class: 'card recorder' }, h('div', { class: 'recorder-controls' }, start, stop, timer), status),
    result,
  );

  let recorder: MediaRecorder | null = null;
  let stream: MediaStream | null = null;
  let tick: number | undefined;
  let startedAt = 0;

  const stopAll = () => {
    window.clearInterval(tick);
    if (recorder && recorder.state !== 'inactive') recorder.stop();
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
  };

  start.addEventListener('click', async () => {
    result.replaceChildren();
    if (typeof MediaRecorder === 'undefined' || !navigator.mediaDevices?.getUserMedia) {
      status.textContent = 'This browser cannot record audio. Record the note elsewhere and upload it on the Upload screen.';
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      status.textContent = `No microphone: ${(err as Error).message}. Allow the microphone for this site and try again.`;
      return;
    }
    const type = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm', 'audio/mp4'].find((t) => MediaRecorder.isTypeSupported(t)) ?? '';
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    const chunks: Blob[] = [];
    recorder.addEventListener('dataavailable', (e) => e.data.size && chunks.push(e.data));
    recorder.addEventListener('stop', () => {
      const essence = (recorder?.mimeType || type || 'audio/webm').split(';')[0]!;
      const blob = new Blob(chunks, { type: essence });
      const seconds = (Date.now() - startedAt) / 1000;
      showTake(blob, essence, seconds);
    });
    recorder.start(250);
    startedAt = Date.now();
    start.disabled = true;
    stop.disabled = false;
    stop.focus();
    status.textContent = 'Recording…';
    announce('Recording started');
    tick = window.setInterval(() => {
      const s = (Date.now() - startedAt) / 1000;
      timer.textContent = formatDuration(s * 1000) || '0:00';
      if (s >= MAX_SECONDS) stop.click();
    }, 250);
  });

  stop.addEventListener('click', () => {
    stopAll();
    start.disabled = false;
    stop.disabled = true;
    status.textContent = 'Recorded. Listen to it, then upload it or record again.';
    announce('Recording stopped');
  });

  function showTake(blob: Blob, type: string, seconds: number): void {
    const local = URL.createObjectURL(blob);
    const upload = h('button', { type: 'button', class: 'btn btn-primary', id: 'record-upload' }, 'Upload as voice note');
    const discard = h('button', { type: 'button', class: 'btn btn-quiet' }, 'Discard');
    const state = h('p', { 'aria-live': 'polite' });
    const ext = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
    result.replaceChildren(
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'take-title' },
        h('h2', { id: 'take-title' }, `Your recording (${seconds.toFixed(1)} s)`),
        h('audio', { controls: true, src: local, 'aria-label': 'Your recording, before upload' }),
        h('div', { class: 'row-actions' }, upload, discard),
        state,
      ),
    );
    discard.addEventListener('click', () => {
      URL.revokeObjectURL(local);
      result.replaceChildren();
      start.focus();
    });
    upload.addEventListener('click', async () => {
      upload.disabled = true;
      discard.disabled = true;
      state.replaceChildren(statusBadge('processing'), ' Uploading…');
      try {
        const name = `voice-note-${new Date().toISOString().replace(/[:.]/g, '-')}.${ext}`;
        const up = await dashboardUpload(blob, name, 'voice_note');
        state.replaceChildren(statusBadge('processing'), ' Processing…');
        const m = await waitSettled(up.id);
        if (m.status !== 'ready') {
          state.replaceChildren(statusBadge('failed'), ` ${m.error?.message ?? `ended ${m.status}`}`);
          return;
        }
        URL.revokeObjectURL(local);
        result.replaceChildren(
          h(
            'section',
            { class: 'card voice-ready', 'aria-labelledby': 'ready-title', id: 'voice-ready' },
            h('h2', { id: 'ready-title', tabindex: -1 }, 'Voice note ready'),
            m.waveform?.length ? waveformEl(m.waveform) : h('p', { class: 'muted' }, 'No waveform (the note is silent).'),
            h('audio', { controls: true, src: m.url ?? '', 'aria-label': 'The stored voice note' }),
            h('p', { class: 'muted' }, statusBadge('ready'), ` ${formatDuration(m.durationMs)} · `, countdownEl(m.expiresAt)),
            h('a', { class: 'btn btn-small btn-quiet', href: `#/library?focus=${encodeURIComponent(m.id)}` }, 'See it in the library'),
          ),
        );
        announce('Voice note ready');
        result.querySelector<HTMLElement>('h2')?.focus();
      } catch (err) {
        state.replaceChildren(statusBadge('failed'), ` ${err instanceof ApiError ? err.message : (err as Error).message}`);
        upload.disabled = false;
        discard.disabled = false;
      }
    });
    upload.focus();
  }

  return stopAll;
}
