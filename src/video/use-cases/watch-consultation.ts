import { FINAL_STATUSES } from '../../domain/consultation.js';
import { DomainError } from '../../domain/errors.js';
import type { Caller } from '../audit.js';
import { loadConsultation } from '../consultation-access.js';
import type { UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';
import { wakeUps } from '../watching.js';
import { getConsultationStatus } from './get-consultation-status.js';

/**
 * WatchConsultation: the consultation as GetConsultationStatus answers it, then again
 * after every committed change, whichever copy of the service made it; each view newer
 * than the one before (changes committed in quick succession may come as one view, the
 * newest). The stream ends after a final state (ended, cancelled, no-show), with NOT_FOUND
 * once the caller may no longer see the consultation, with UNAUTHENTICATED when the
 * caller's token expires, and cleanly when the service stops or the caller goes. The opening is audited once, as a read.
 */
export async function* watchConsultation(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
  signal: AbortSignal,
): AsyncGenerator<ConsultationView> {
  const watching = deps.watching;
  if (!watching) throw new DomainError('unavailable', 'watching is not available here');
  const release = watching.open(caller.principal);
  const { expiresAt } = caller.principal;
  const expired = expiresAt
    ? AbortSignal.timeout(Math.max(0, expiresAt.getTime() - Date.now()))
    : new AbortController().signal;
  const wake = wakeUps([signal, watching.stopping, expired]);
  // Listening before the first read: a change committed meanwhile is not missed.
  /** When the oldest change not yet sent was made: the delivery lag is measured from it. */
  let pendingSince: number | undefined;
  const unwatch = watching.feed.watchConsultation(request.consultationId, {
    change(change) {
      pendingSince = Math.min(pendingSince ?? change.at, change.at);
      wake.wake();
    },
    resync: wake.wake,
  });
  try {
    let view = await getConsultationStatus(deps, caller, request);
    yield view;
    while (!FINAL_STATUSES.has(view.status) && (await wake.next())) {
      if (expired.aborted) break;
      // The access rules again, as for every read: a caller who may no longer see it is
      // answered NOT_FOUND, and the stream ends.
      const current = toView(
        await loadConsultation(
          deps.orm.em.fork(),
          caller.principal,
          request.consultationId,
          'consultation.read',
        ),
      );
      if (current.version <= view.version) continue;
      view = current;
      if (pendingSince !== undefined) watching.delivered(Date.now() - pendingSince);
      pendingSince = undefined;
      yield view;
    }
    if (expired.aborted) {
      throw new DomainError('unauthenticated', 'the token expired; watch again with a new one');
    }
  } finally {
    unwatch();
    wake.close();
    release();
  }
}
