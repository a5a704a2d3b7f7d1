import { isDatabaseUnavailable } from '../../persistence/database-errors.js';
import type { Caller } from '../audit.js';
import type { UseCaseDeps } from '../use-case.js';
import { openWatch } from '../watching.js';
import { listWaitingRoom, readWaitingRoom, type WaitingPatientView } from './list-waiting-room.js';

/** What one message of the stream says: the waiting room, or only that the stream is alive. */
export type WaitingRoomUpdate =
  | { readonly kind: 'list'; readonly patients: readonly WaitingPatientView[] }
  | { readonly kind: 'keep-alive' };

/**
 * WatchWaitingRoom: the waiting room as ListWaitingRoom answers it, then again each time a
 * consultation of the caller's clinic changes and the list the caller sees is different
 * (a check-in, an admission, a start, a cancellation, a no-show), whichever copy of the
 * service made the change; a quiet stream sends keep-alives. The opening is audited once,
 * as a list. It runs until the caller goes, the caller's token expires (UNAUTHENTICATED)
 * or the service stops.
 */
export async function* watchWaitingRoom(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly doctorId: string },
  signal: AbortSignal,
): AsyncGenerator<WaitingRoomUpdate> {
  const { principal } = caller;
  // A doctor's queue (or the one a nurse picked) changes with that doctor's consultations.
  const doctor = principal.role === 'doctor' ? principal.userId : request.doctorId;
  const watch = openWatch(deps.watching, principal, signal, (feed, listener) =>
    doctor
      ? feed.watchDoctor(principal.clinicId, doctor, listener)
      : feed.watchClinic(principal.clinicId, listener),
  );
  try {
    let list = await listWaitingRoom(deps, caller, request);
    yield { kind: 'list', patients: list };
    for (let step = await watch.next(); step !== 'end'; step = await watch.next()) {
      if (step === 'keep-alive') {
        watch.keptAlive();
        yield { kind: 'keep-alive' };
        continue;
      }
      let current: WaitingPatientView[];
      try {
        current = await readWaitingRoom(
          deps.orm.em.fork(),
          principal,
          request.doctorId,
          deps.clock.now(),
        );
      } catch (error) {
        // A database blip ends no stream: read again a moment later.
        if (!isDatabaseUnavailable(error)) throw error;
        watch.retryLater();
        continue;
      }
      // Who waits and in which order; the waiting times alone grow with the clock.
      if (sameQueue(current, list)) continue;
      list = current;
      watch.sent();
      yield { kind: 'list', patients: list };
    }
  } finally {
    watch.close();
  }
}

function sameQueue(a: readonly WaitingPatientView[], b: readonly WaitingPatientView[]): boolean {
  const key = (list: readonly WaitingPatientView[]) =>
    list.map((p) => `${p.consultationId}:${p.queuePosition}`).join(',');
  return key(a) === key(b);
}
