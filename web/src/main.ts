import { readClaims, videoClient } from './api.js';
import { doctorView } from './doctor.js';
import { clockTime, h, show } from './dom.js';
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

function start(token: string): void {
  const claims = readClaims(token);
  if (!claims) {
    signIn('That is not a token (a JWT has three parts separated by dots).');
    return;
  }
  const session = new AbortController();
  const client = videoClient(serviceUrl, token);
  show(
    who,
    `Signed in as ${claims.userId} (${claims.role}, clinic ${claims.clinicId})`,
    claims.expiresAt ? ` until ${clockTime(claims.expiresAt)}` : '',
    ' · ',
    h(
      'button',
      {
        type: 'button',
        onclick: () => {
          session.abort();
          signIn();
        },
      },
      'Sign out',
    ),
  );
  if (claims.role === 'patient') {
    patientView(main, client, params.get('consultation') ?? undefined, session.signal);
  } else {
    doctorView(main, client, session.signal);
  }
}

function signIn(problem?: string): void {
  show(who, `Service: ${serviceUrl}`);
  const token = h('input', {
    type: 'text',
    name: 'token',
    placeholder: 'bearer token (JWT)',
    required: true,
  });
  show(
    main,
    h(
      'section',
      {},
      h('h2', {}, 'Sign in'),
      h(
        'p',
        {},
        'Paste a development token, for example from ',
        h('code', {}, 'npm run token -- --role doctor --user d1 --clinic c1'),
        '. In production, the platform’s login provides it.',
      ),
      h(
        'form',
        {
          onsubmit: (event: Event) => {
            event.preventDefault();
            start(token.value.trim());
          },
        },
        token,
        h('button', { type: 'submit' }, 'Sign in'),
      ),
      problem && h('p', { class: 'error' }, problem),
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
