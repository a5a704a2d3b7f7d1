import { describe, expect, it } from 'vitest';
import { withoutLiterals } from '../../src/tracing.js';

describe('a statement as a span shows it', () => {
  it('replaces every literal by ?, and keeps identifiers, keywords and placeholders', () => {
    expect(
      withoutLiterals(
        `select "c0".* from "consultation" as "c0" where "c0"."patient_id" = 'pat-1' and "c0"."version" = 3 limit 21`,
      ),
    ).toBe(
      `select "c0".* from "consultation" as "c0" where "c0"."patient_id" = ? and "c0"."version" = ? limit ?`,
    );
    expect(withoutLiterals(`insert into t (a, b) values ($1, $2), ('it''s', E'a\\'b')`)).toBe(
      'insert into t (a, b) values ($1, $2), (?, ?)',
    );
    expect(withoutLiterals(`select $$Jane's notes$$, $tag$x$tag$, -1.5e3, t1.c2 from t1`)).toBe(
      'select ?, ?, ?, t1.c2 from t1',
    );
    expect(withoutLiterals(`update p set payload = '{"name": "Jane Roe"}'::jsonb`)).toBe(
      'update p set payload = ?::jsonb',
    );
  });
});
