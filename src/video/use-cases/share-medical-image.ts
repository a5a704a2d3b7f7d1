import { createHash, randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { FINAL_STATUSES } from '../../domain/consultation.js';
import { failedPrecondition } from '../../domain/errors.js';
import { checkMedicalImage, type MedicalImageType } from '../../domain/medical-image.js';
import { type SharedImageEntity, SharedImageSchema } from '../../persistence/entities.js';
import type { Caller } from '../audit.js';
import { callerRole, loadConsultation } from '../consultation-access.js';
import { addEvent, eventScope } from '../events.js';
import { audited, retriedOnDuplicateKey, type UseCaseDeps } from '../use-case.js';

export interface ShareMedicalImageRequest {
  readonly consultationId: string;
  readonly content: Uint8Array;
  /** The content type the caller declares ('' for none); the bytes must agree. */
  readonly declaredType: string;
  /** '' for none; else a retry with the same key answers the first share. */
  readonly idempotencyKey: string;
}

export interface SharedImageView {
  readonly imageId: string;
  readonly contentType: MedicalImageType;
  readonly sizeBytes: number;
  readonly sha256: string;
  readonly sharedAt: Date;
}

/**
 * ShareMedicalImage: a participant shares a PNG, JPEG or PDF during the consultation,
 * checked by its bytes and size, once per idempotency key.
 */
export async function shareMedicalImage(
  deps: UseCaseDeps,
  caller: Caller,
  request: ShareMedicalImageRequest,
): Promise<SharedImageView> {
  const { principal } = caller;
  const action = 'consultation.share_image';
  return retriedOnDuplicateKey(() =>
    audited(deps, caller, action, request.consultationId, async (em) => {
      const c = await loadConsultation(em, principal, request.consultationId, action);
      callerRole(principal, c);
      if (request.idempotencyKey !== '') {
        const earlier = await em.findOne(SharedImageSchema, {
          consultation: c,
          sharedBy: principal.userId,
          idempotencyKey: request.idempotencyKey,
        });
        if (earlier) return imageView(earlier);
      }
      if (FINAL_STATUSES.has(c.status)) {
        throw failedPrecondition(`the consultation is ${c.status.replace('_', ' ')}`);
      }
      const contentType = checkMedicalImage(
        request.content,
        request.declaredType,
        deps.rules.maxImageBytes,
      );
      const image = em.create(SharedImageSchema, {
        id: randomUUID(),
        consultation: c,
        clinicId: c.clinicId,
        sharedBy: principal.userId,
        contentType,
        sizeBytes: request.content.length,
        sha256: createHash('sha256').update(request.content).digest('hex'),
        content: Buffer.from(request.content),
        sharedAt: deps.clock.now(),
        idempotencyKey: request.idempotencyKey || null,
      });
      addEvent(
        em,
        'video.image.shared',
        eventScope(c),
        {
          ...eventScope(c),
          userId: principal.userId,
          imageId: image.id,
          contentType,
          sizeBytes: image.sizeBytes,
          sha256: image.sha256,
          at: timestampFromDate(image.sharedAt),
        },
        image.sharedAt,
      );
      return imageView(image);
    }),
  );
}

const imageView = (image: SharedImageEntity): SharedImageView => ({
  imageId: image.id,
  contentType: image.contentType as MedicalImageType,
  sizeBytes: image.sizeBytes,
  sha256: image.sha256,
  sharedAt: image.sharedAt,
});
