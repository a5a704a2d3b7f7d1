import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../src/config.js';

it('documents every configuration variable in the README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const documented = new Set([...readme.matchAll(/^\| `([A-Z0-9_]+)`/gm)].map((m) => m[1]));
  expect(CONFIG_VARIABLES.filter((name) => !documented.has(name))).toEqual([]);
  expect([...documented].filter((name) => !CONFIG_VARIABLES.includes(name!))).toEqual([]);
});
