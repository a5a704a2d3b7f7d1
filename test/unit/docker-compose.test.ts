import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';

/**
 * Docker cannot run where these tests run, so the compose file is checked by reading it:
 * every service has a health check, the images are the intended ones, Kafka runs KRaft,
 * and the service is configured only with variables it knows, into a valid production
 * configuration.
 */
interface Compose {
  services: Record<
    string,
    { image?: string; build?: string; healthcheck?: unknown; environment?: Record<string, string> }
  >;
}
const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
const compose = parse(read('docker-compose.yml')) as Compose;

describe('docker-compose.yml', () => {
  it('runs PostgreSQL, Kafka, OpenVidu and the service built here', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'kafka',
      'openvidu',
      'postgres',
      'video-service',
    ]);
    expect(compose.services.postgres?.image).toMatch(/^postgres:/);
    expect(compose.services.kafka?.image).toMatch(/^apache\/kafka:/);
    expect(compose.services.openvidu?.image).toMatch(/^openvidu\/openvidu-dev:2\./);
    expect(compose.services['video-service']?.build).toBe('.');
  });

  it('checks the health of every service (the built one through its Dockerfile)', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (name !== 'video-service') expect(service.healthcheck, name).toBeDefined();
    }
    expect(read('Dockerfile')).toMatch(/^HEALTHCHECK [\s\S]*?\/healthz/m);
    expect(read('Dockerfile')).toMatch(/^USER node$/m);
  });

  it('runs Kafka in KRaft mode, broker and controller in one', () => {
    const env = compose.services.kafka?.environment ?? {};
    expect(env.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    expect(env.KAFKA_CONTROLLER_QUORUM_VOTERS).toBeDefined();
  });

  it('configures the service only with variables it reads, into a valid production config', () => {
    const env = compose.services['video-service']?.environment ?? {};
    const unknown = Object.keys(env).filter((name) => !CONFIG_VARIABLES.includes(name));
    expect(unknown).toEqual([]);
    const config = loadConfig(
      Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])),
    );
    expect(config.env).toBe('production');
    expect(config.kafka.brokers).toEqual(['kafka:29092']);
    expect(config.database.migrateOnStart).toBe(true);
  });
});

describe('the production command', () => {
  it('is the same in the Docker image as in `npm run serve`, which the bench measures', () => {
    const manifest = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    const cmd = /^CMD (\[.*\])$/m.exec(read('Dockerfile'))?.[1];
    expect(cmd).toBeDefined();
    expect((JSON.parse(cmd!) as string[]).join(' ')).toBe(manifest.scripts.serve);
    expect(manifest.scripts.serve).toMatch(/^node .*dist\/service\.mjs$/);
  });
});
