import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/http/metrics.js';

describe('createMetrics', () => {
  it('asks for the outbox backlog once per scrape, for both of its gauges', async () => {
    let asked = 0;
    const metrics = createMetrics({
      outbox: async () => {
        asked++;
        return { pending: 7, oldestAgeSeconds: 42 };
      },
      providers: async () => [],
    });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^outbox_pending_events 7$/m);
    expect(text).toMatch(/^outbox_oldest_pending_age_seconds 42$/m);
    expect(asked).toBe(1);
    await metrics.registry.metrics();
    expect(asked).toBe(2);
  });
});
