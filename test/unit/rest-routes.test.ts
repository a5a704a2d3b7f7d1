import { describe, expect, it } from 'vitest';
import { VideoService } from '../../gen/video/v1/video_service_pb.js';
import { restRoutes } from '../../src/http/rest-transcoder.js';

/** The REST routes come from the proto's `google.api.http` annotations, and only from there. */
describe('REST routes from the annotations', () => {
  const routes = restRoutes([VideoService]);
  const table = routes.map((r) => `${r.httpMethod} ${r.template} ${r.method.name}`);

  it('gives every unary RPC of VideoService a route (streams are Connect, gRPC and gRPC-Web only)', () => {
    expect(routes.map((r) => r.method.name).sort()).toEqual(
      VideoService.methods
        .filter((m) => m.methodKind === 'unary')
        .map((m) => m.name)
        .sort(),
    );
  });

  it("keeps the seed design's paths exactly", () => {
    expect(table).toEqual(
      expect.arrayContaining([
        'POST /api/video/token GenerateToken',
        'POST /api/video/consultation/start StartConsultation',
        'POST /api/video/consultation/end EndConsultation',
        'GET /api/video/consultation/{consultation_id}/status GetConsultationStatus',
        'POST /api/video/consultation/{consultation_id}/report ReportTechnicalIssue',
        'POST /api/video/image/share ShareMedicalImage',
        'GET /api/video/history ListConsultationHistory',
        'GET /api/video/providers/status GetProviderStatus',
      ]),
    );
  });

  it('has no two routes on one method and path', () => {
    const keys = routes.map((r) => `${r.httpMethod} ${r.template}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('binds path variables to request fields and reads only side-effect-free RPCs by GET', () => {
    const status = routes.find((r) => r.method.name === 'GetConsultationStatus');
    const variable = status?.segments.find((s) => 'variable' in s);
    expect(variable && 'variable' in variable && variable.variable[0]?.name).toBe(
      'consultation_id',
    );
    for (const route of routes.filter((r) => r.httpMethod === 'GET')) {
      expect(route.method.idempotency, route.method.name).toBe(1); // NO_SIDE_EFFECTS
      expect(route.body).toBeUndefined();
    }
    for (const route of routes.filter((r) => r.httpMethod === 'POST')) {
      expect(route.body, route.method.name).toBe('*');
    }
  });
});
