import { describe, expect, it } from 'vitest';
import { mappedStream } from '../../src/rpc/mapped-stream.js';

class Mapped extends Error {}

async function* numbers(log: string[], failAt?: number) {
  try {
    for (let n = 1; n <= 3; n++) {
      if (n === failAt) throw new Error(`failed at ${n}`);
      yield n;
    }
  } finally {
    log.push('source finished');
  }
}

const mapError = (failure: unknown) => new Mapped(`mapped: ${(failure as Error).message}`);

describe('mappedStream', () => {
  it('passes each message through the mapping, in order, then ends', async () => {
    const seen: string[] = [];
    for await (const value of mappedStream(numbers([]), (n) => `#${n}`)) seen.push(value);
    expect(seen).toEqual(['#1', '#2', '#3']);
  });

  it("passes the source's failure through the error mapping", async () => {
    const stream = mappedStream(numbers([], 2), (n) => n, mapError);
    await expect(stream.next()).resolves.toEqual({ value: 1 });
    await expect(stream.next()).rejects.toThrow(new Mapped('mapped: failed at 2'));
  });

  it("passes the mapping's own failure through the error mapping", async () => {
    const stream = mappedStream(
      numbers([]),
      () => {
        throw new Error('bad message');
      },
      mapError,
    );
    await expect(stream.next()).rejects.toThrow(new Mapped('mapped: bad message'));
  });

  it('tells the source when the reader stops early, so that it cleans up', async () => {
    const log: string[] = [];
    for await (const value of mappedStream(numbers(log), (n) => n)) {
      if (value === 2) break;
    }
    expect(log).toEqual(['source finished']);
  });

  it('throws into the source, which may clean up and end', async () => {
    const log: string[] = [];
    const stream = mappedStream(numbers(log), (n) => n, mapError);
    await stream.next();
    const thrown = Promise.resolve().then(() => stream.throw?.(new Error('stop')));
    await expect(thrown).rejects.toThrow(new Mapped('mapped: stop'));
    expect(log).toEqual(['source finished']);
  });
});
