import type { TestProject } from 'vitest/node';
import { ensureZipkin } from './zipkin.js';

/**
 * One Zipkin server for the whole integration run: ZIPKIN_URL when set, else a local one
 * started here (scripts/zipkin) and stopped when the run ends. Test files read its
 * address with `inject('zipkinUrl')`.
 */
export default async function setup(project: TestProject) {
  const zipkin = await ensureZipkin();
  project.provide('zipkinUrl', zipkin.url);
  return () => zipkin.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    zipkinUrl: string;
  }
}
