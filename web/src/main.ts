import { findToken, readClaims, type Session, videoClient } from './api.js';
import { doctorView } from './doctor.js';
import { h, show, when } from './dom.js';
import { patientView } from './patient.js';

/**
 * The page's start: where the service is, who the user is (a bearer token), and the
 * doctor's or the patient's view for them.
 *
 * - The service: `?service=<url>`; else this page's own origin when the service serves
 *   it (at /app/), else http://127.0.0.1:8080 (the development server's case).
 * - The token: `#token=<jwt>` (taken out of the address bar at once) or the sign-in
 *   form. It stays in this tab's memory only.
 * - `?consultation=<id>` opens a patient's consultation directly.
 */
const params = new URLSearchParams(location.search);
const serviceUrl =
  params.get('service') ??
  (location.pathname.startsWith('/app') ? location.origin : 'http://127.0.0.1:8080');
const main = document.getElementById('main') as HTMLElement;
const who = document.getElementById('who') as HTMLElement;

function start(pasted: string): void {
  const token = findToken(pasted);
  const claims = token && readClaims(token);
  if (!token || !claims) {
    signIn('That is not a token (a JWT has three parts separated by dots).');
    return;
  }
  if (claims.expiresAt && claims.expiresAt.getTime() <= Date.now()) {
    signIn(`That token expired at ${when(claims.expiresAt)}; make a new one.`);
    return;
  }
  const signedIn = new AbortController();
  const session: Session = {
    client: videoClient(serviceUrl, token),
    signal: signedIn.signal,
    signOut(reason) {
      if (signedIn.signal.aborted) return;
      signedIn.abort();
      signIn(reason);
    },
  };
  show(
    who,
    `Signed in as ${claims.userId} (${claims.role}, clinic ${claims.clinicId})`,
    claims.expiresAt ? ` until ${when(claims.expiresAt)}` : '',
    ' ',
    h('button', { type: 'button', class: 'quiet', onclick: () => session.signOut() }, 'Sign out'),
  );
  if (claims.role === 'patient') {
    patientView(main, session, params.get('consultation') ?? undefined);
  } else {
    doctorView(main, session);
  }
}

function signIn(problem?: string): void {
  show(who, `Service: ${serviceUrl}`);
  const token = h('input', {
    type: 'text',
    name: 'token',
    placeholder: 'bearer token (JWT)',
    required: true,
    autocomplete: 'off',
  });
  show(
    main,
    h(
      'section',
      {},
      h('h2', {}, 'Sign in'),
      problem && h('p', { class: 'error', 'data-test': 'sign-in-problem' }, problem),
      h(
        'p',
        {},
        'Paste a development token, for example from ',
        h('code', {}, 'npm run -s token -- --role doctor --user d1 --clinic c1'),
        '. In production, the platform’s login provides it.',
      ),
      h(
        'form',
        {
          onsubmit: (event: Event) => {
            event.preventDefault();
            start(token.value);
          },
        },
        token,
        h('button', { type: 'submit' }, 'Sign in'),
      ),
    ),
  );
}

const fromAddress = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromAddress) {
  // Out of the address bar and the history at once: it is a credential.
  history.replaceState(null, '', location.pathname + location.search);
  start(fromAddress);
} else {
  signIn();
}
