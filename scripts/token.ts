/**
 * Mints a development bearer token, signed with AUTH_JWT_SECRET (or the development
 * secret the service uses when that is unset).
 *
 *   npm run token -- --role doctor --user d1 --clinic c1 [--ttl 3600]
 *
 * The token lives `--ttl` seconds, at most AUTH_MAX_TOKEN_LIFETIME_SECONDS (24 h by default).
 *
 * Roles: patient, doctor, nurse, clinic_admin, service.
 */
import { parseArgs } from 'node:util';
import { mintToken } from '../src/auth/jwt.js';
import { loadConfig } from '../src/config.js';
import { ROLES, type Role } from '../src/domain/access.js';

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'doctor' },
    user: { type: 'string', default: 'd1' },
    clinic: { type: 'string', default: 'c1' },
    ttl: { type: 'string', default: '3600' },
  },
});

if (!ROLES.includes(values.role as Role)) {
  process.stderr.write(`--role must be one of: ${ROLES.join(', ')}\n`);
  process.exit(2);
}
const config = loadConfig();
const ttl = Number(values.ttl);
const maxTtl = config.auth.maxTokenLifetimeSeconds;
if (!Number.isInteger(ttl) || ttl < 1 || ttl > maxTtl) {
  // The service refuses a token that lives longer (AUTH_MAX_TOKEN_LIFETIME_SECONDS).
  process.stderr.write(`--ttl must be 1 to ${maxTtl} seconds (AUTH_MAX_TOKEN_LIFETIME_SECONDS)\n`);
  process.exit(2);
}
process.stdout.write(
  `${mintToken({
    secret: config.auth.jwtSecret,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    userId: values.user,
    role: values.role as Role,
    clinicId: values.clinic,
    expiresInSeconds: ttl,
  })}\n`,
);
