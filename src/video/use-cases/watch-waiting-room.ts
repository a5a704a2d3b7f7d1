import { DomainError } from '../../domain/errors.js';
import type { Caller } from '../audit.js';
import type { UseCaseDeps } from '../use-case.js';
import { wakeUps } from '../watching.js';
import { listWaitingRoom, readWaitingRoom, type WaitingPatientView } from './list-waiting-room.js';

/**
 * WatchWaitingRoom: the waiting room as ListWaitingRoom answers it, then again each time a
 * consultation of the caller's clinic changes and the list the caller sees is different
 * (a check-in, an admission, a start, a cancellation, a no-show), whichever copy of the
 * service made the change. The opening is audited once, as a list. It runs until the
 * caller goes, the caller's token expires (UNAUTHENTICATED) or the service stops.
 */
export async function* watchWaitingRoom(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly doctorId: string },
  signal: AbortSignal,
): AsyncGenerator<WaitingPatientView[]> {
  const watching = deps.watching;
  if (!watching) throw new DomainError('unavailable', 'watching is not available here');
  const release = watching.open(caller.principal);
  const { expiresAt } = caller.principal;
  const expired = expiresAt
    ? AbortSignal.timeout(Math.max(0, expiresAt.getTime() - Date.now()))
    : new AbortController().signal;
  const wake = wakeUps([signal, watching.stopping, expired]);
  let pendingSince: number | undefined;
  const unwatch = watching.feed.watchClinic(caller.principal.clinicId, {
    change(change) {
      pendingSince = Math.min(pendingSince ?? change.at, change.at);
      wake.wake();
    },
    resync: wake.wake,
  });
  try {
    let list = await listWaitingRoom(deps, caller, request);
    yield list;
    while ((await wake.next()) && !expired.aborted) {
      const current = await readWaitingRoom(
        deps.orm.em.fork(),
        caller.principal,
        request.doctorId,
        deps.clock.now(),
      );
      // Who waits and in which order; the waiting times alone grow with the clock.
      if (sameQueue(current, list)) continue;
      list = current;
      if (pendingSince !== undefined) watching.delivered(Date.now() - pendingSince);
      pendingSince = undefined;
      yield list;
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

function sameQueue(a: readonly WaitingPatientView[], b: readonly WaitingPatientView[]): boolean {
  const key = (list: readonly WaitingPatientView[]) =>
    list.map((p) => `${p.consultationId}:${p.queuePosition}`).join(',');
  return key(a) === key(b);
}
