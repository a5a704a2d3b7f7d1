import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ACTIONS, PERMISSIONS, ROLES } from '../../src/domain/access.js';

/** The permission matrix as docs/security.md must show it. */
function matrix(): string {
  const header = `| action | ${ROLES.join(' | ')} |`;
  const rule = `|---|${ROLES.map(() => ':-:').join('|')}|`;
  const rows = ACTIONS.map(
    (action) =>
      `| \`${action}\` | ${ROLES.map((role) => (PERMISSIONS[role].has(action) ? '✓' : '·')).join(' | ')} |`,
  );
  return [header, rule, ...rows].join('\n');
}

describe('docs/security.md', () => {
  it('lists every action the policy knows', () => {
    const known = new Set(ROLES.flatMap((role) => [...PERMISSIONS[role]]));
    expect([...known].sort()).toEqual([...new Set(ACTIONS)].filter((a) => known.has(a)).sort());
  });

  it('shows the permission table exactly as the code has it', () => {
    const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
    // On failure the expected table is printed: paste it into the doc.
    expect(doc).toContain(matrix());
  });
});
