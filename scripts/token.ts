/**
 * Mints a development bearer token, signed with AUTH_JWT_SECRET (or the development
 * secret the service uses when that is unset).
 *
 *   npm run token -- --role doctor --user d1 --clinic c1 [--ttl 3600]
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
process.stdout.write(
  `${mintToken({
    secret: config.auth.jwtSecret,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    userId: values.user,
    role: values.role as Role,
    clinicId: values.clinic,
    expiresInSeconds: Number(values.ttl),
  })}\n`,
);
