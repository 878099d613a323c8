import './styles.css';
import { currentSession, setCsrfToken, signOut, whenSignedOut, type Session } from './api.js';
import { renderLibrary } from './screens/library.js';
import { renderRecord } from './screens/record.js';
import { renderSchedule } from './screens/schedule.js';
import { renderSignIn } from './screens/sign-in.js';
import { announce, clear, focusHeading, startCountdowns } from './ui.js';

type Screen = (root: HTMLElement, session: Session) => void | (() => void) | Promise<void | (() => void)>;

const SCREENS: Record<string, { title: string; render: Screen }> = {
  // Uppy is most of the console's weight: loaded only when the upload screen opens.
  upload: { title: 'Upload', render: async (root, s) => (await import('./screens/upload.js')).renderUpload(root, s) },
  record: { title: 'Voice note', render: renderRecord },
  library: { title: 'Library', render: renderLibrary },
  schedule: { title: 'Schedule check', render: renderSchedule },
};

const main = document.getElementById('main')!;
const topbar = document.getElementById('topbar')!;
let session: Session | null = null;
let leave: (() => void) | void = undefined;

function screenName(): string {
  const name = location.hash.replace(/^#\/?/, '').split('?')[0] ?? '';
  return SCREENS[name] ? name : 'library';
}

async function route(): Promise<void> {
  leave?.();
  leave = undefined;
  clear(main);
  if (!session) {
    topbar.hidden = true;
    document.title = 'Sign in · mediaflow console';
    renderSignIn(main, async () => {
      session = await currentSession();
      if (session) setCsrfToken(session.csrfToken);
      announce('Signed in');
      if (!location.hash || location.hash === '#/') location.hash = '#/library';
      else await route();
    });
    return;
  }
  topbar.hidden = false;
  document.getElementById('who-email')!.textContent = session.email;
  const name = screenName();
  for (const a of document.querySelectorAll<HTMLAnchorElement>('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${SCREENS[name]!.title} · mediaflow console`;
  leave = await SCREENS[name]!.render(main, session);
  focusHeading(main);
}

whenSignedOut(() => {
  if (!session) return;
  session = null;
  announce('Your session ended. Sign in again.');
  void route();
});

document.getElementById('sign-out')!.addEventListener('click', async () => {
  try {
    await signOut();
  } finally {
    session = null;
    setCsrfToken('');
    announce('Signed out');
    history.replaceState(null, '', location.pathname);
    await route();
  }
});

window.addEventListener('hashchange', () => void route());

startCountdowns();
void (async () => {
  session = await currentSession().catch(() => null);
  if (session) setCsrfToken(session.csrfToken);
  await route();
})();
