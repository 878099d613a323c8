import { ApiError, signIn } from '../api.js';
import { h } from '../ui.js';

export function renderSignIn(root: HTMLElement, done: () => Promise<void>): void {
  const error = h('p', { class: 'form-error', id: 'sign-in-error', role: 'alert' });
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true, 'aria-describedby': 'sign-in-error' });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'sign-in-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card sign-in', novalidate: true },
    h('h1', {}, 'Sign in to mediaflow'),
    h('p', { class: 'muted' }, 'Upload media, record voice notes and check that they will still be there when your messages go out.'),
    h('div', { class: 'field' }, h('label', { for: 'email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), password),
    error,
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!email.value || !password.value) {
      error.textContent = 'Enter your email and password.';
      (email.value ? password : email).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      await signIn(email.value, password.value);
      password.value = '';
      await done();
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.status === 401
          ? 'Wrong email or password.'
          : err instanceof ApiError && err.status === 429
            ? 'Too many failed attempts. Wait a few minutes, then try again.'
            : `Could not sign in: ${(err as Error).message}`;
      password.select();
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  root.append(h('div', { class: 'sign-in-wrap' }, form));
}
