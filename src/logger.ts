import { type Logger, pino } from 'pino';

/**
 * JSON logs with ids, never PHI: headers that carry credentials and the fields that
 * could hold names, free text or image bytes are censored wherever they appear.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'video-service' },
      redact: {
        paths: [
          'authorization',
          '*.authorization',
          'headers.authorization',
          '*.headers.authorization',
          'token',
          '*.token',
          'description',
          '*.description',
          'content',
          '*.content',
          'name',
          '*.name',
          'displayName',
          '*.displayName',
        ],
        censor: '[redacted]',
      },
    },
    destination as pino.DestinationStream | undefined,
  );
}
