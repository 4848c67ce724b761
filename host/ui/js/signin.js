// The sign-in card: one password field for the operator secret.

import { post } from './api.js';
import { h } from './dom.js';

export function signIn(root, { onSuccess, notice }) {
  const input = h('input', {
    type: 'password', id: 'secret', name: 'secret', required: true, autocomplete: 'current-password',
    spellcheck: 'false', 'data-test': 'signin-secret', 'aria-describedby': 'signin-error',
  });
  const error = h('p', { id: 'signin-error', class: 'form-error', role: 'alert', 'data-test': 'signin-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-test': 'signin-submit' }, 'Sign in');
  const form = h('form', { class: 'signin-form', 'data-test': 'signin-form', novalidate: true },
    // For password managers: the secret belongs to this fixed account name.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'helio-operator', hidden: true, tabindex: -1 }),
    h('label', { for: 'secret' }, 'Operator secret'),
    input,
    error,
    submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const secret = input.value;
    if (!secret) {
      error.textContent = 'Enter the operator secret (dashboard.api_secret).';
      error.hidden = false;
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    error.hidden = true;
    try {
      const session = await post('/api/auth/session', { secret }, { quiet401: true });
      input.value = '';
      onSuccess(session || { auth_required: true, authenticated: true });
    } catch (err) {
      // 401 (wrong secret) and 429 (too many attempts) carry their message.
      error.textContent = err.message || 'Sign-in failed';
      error.hidden = false;
      submit.disabled = false;
      submit.textContent = 'Sign in';
      input.select();
      input.focus();
    }
  });

  root.appendChild(h('div', { class: 'signin' },
    h('div', { class: 'signin-card', 'data-test': 'signin' },
      h('h1', null, 'Sign in to Helio'),
      h('p', { class: 'muted' }, 'The operator dashboard needs the secret configured as dashboard.api_secret.'),
      notice ? h('p', { class: 'callout tone-info', 'data-test': 'signin-notice' }, notice) : null,
      form)));
  input.focus();
}
