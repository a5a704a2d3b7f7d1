/**
 * Recordings as OpenVidu CE keeps them: their properties, the checks on them, and the
 * Recording object the REST API answers (REST#the-recording-object).
 */
import { ApiError, type Body, isBoolean, isInteger, isString, oneOf, read } from './http.js';

const OUTPUT_MODES = ['COMPOSED', 'COMPOSED_QUICK_START', 'INDIVIDUAL'] as const;
/** REST#post-recording-start, 422: shmSize minimum. */
const MIN_SHM_SIZE = 134_217_728;

export interface RecordingSettings {
  readonly name: string;
  readonly outputMode: (typeof OUTPUT_MODES)[number];
  readonly hasAudio: boolean;
  readonly hasVideo: boolean;
  readonly recordingLayout: string;
  readonly resolution: string;
  readonly frameRate: number;
  readonly shmSize: number;
}

/** REST#post-recording-start: the documented default of every property. */
export const RECORDING_DEFAULTS: RecordingSettings = {
  name: '',
  outputMode: 'COMPOSED',
  hasAudio: true,
  hasVideo: true,
  recordingLayout: 'BEST_FIT',
  resolution: '1280x720',
  frameRate: 25,
  shmSize: 536_870_912,
};

export interface RecordingState {
  readonly id: string;
  readonly sessionId: string;
  readonly createdAt: number;
  readonly settings: RecordingSettings;
  status: 'started' | 'stopped' | 'ready';
  size: number;
  duration: number;
  url: string | null;
  /** Why it stopped (WEBHOOK#recordingstatuschanged `reason`), once it has. */
  reason: string | undefined;
}

/**
 * REST#post-recording-start: the properties over the session's defaults; a wrong type is
 * a 400, values out of range are `rangeStatus` (422 when starting a recording, 400 in a
 * session's defaultRecordingProperties).
 */
export function readRecordingSettings(
  body: Body,
  base: RecordingSettings,
  rangeStatus: number,
): RecordingSettings {
  const settings: RecordingSettings = {
    name: read(body, 'name', isString) ?? base.name,
    outputMode: read(body, 'outputMode', oneOf(OUTPUT_MODES)) ?? base.outputMode,
    hasAudio: read(body, 'hasAudio', isBoolean) ?? base.hasAudio,
    hasVideo: read(body, 'hasVideo', isBoolean) ?? base.hasVideo,
    recordingLayout: read(body, 'recordingLayout', isString) ?? base.recordingLayout,
    resolution: read(body, 'resolution', isString) ?? base.resolution,
    frameRate: read(body, 'frameRate', isInteger) ?? base.frameRate,
    shmSize: read(body, 'shmSize', isInteger) ?? base.shmSize,
  };
  // REST#post-recording-start, 422: "frameRate parameter exceeds acceptable values (min 0
  // and max 120), shmSize exceed acceptable values (min 134217728), or trying to start a
  // recording with both hasAudio and hasVideo to false".
  if (!settings.hasAudio && !settings.hasVideo) {
    throw new ApiError(rangeStatus, 'Cannot start a recording with hasAudio and hasVideo false');
  }
  if (composedWithVideo(settings)) {
    if (settings.frameRate < 0 || settings.frameRate > 120) {
      throw new ApiError(rangeStatus, "Wrong 'frameRate': from 0 to 120");
    }
    if (settings.shmSize < MIN_SHM_SIZE) {
      throw new ApiError(rangeStatus, `Wrong 'shmSize': at least ${MIN_SHM_SIZE}`);
    }
  }
  return settings;
}

export function newRecording(
  id: string,
  sessionId: string,
  settings: RecordingSettings,
): RecordingState {
  return {
    id,
    sessionId,
    createdAt: Date.now(),
    // REST#post-recording-start `name`: "If no name is provided, the video file will be
    // named after id property of the recording".
    settings: { ...settings, name: settings.name || id },
    status: 'started',
    size: 0,
    duration: 0,
    url: null,
    reason: undefined,
  };
}

/**
 * REST#the-recording-object `ready`: duration, size and url "will always be properly
 * defined"; the url is <base>/openvidu/recordings/<RECORDING_ID>/<RECORDING_NAME>.<EXTENSION>.
 */
export function makeReady(recording: RecordingState, stoppedAt: number, baseUrl: string): void {
  recording.status = 'ready';
  recording.duration = (stoppedAt - recording.createdAt) / 1000;
  recording.size = Math.max(1, Math.round(recording.duration * 250_000)); // no file: a plausible size
  recording.url = `${baseUrl}/openvidu/recordings/${recording.id}/${recording.settings.name}.${extension(recording.settings)}`;
}

/** REST#post-recording-start: the properties, those of composed video only where they apply. */
export function recordingSettingsJson(settings: RecordingSettings): Body {
  return {
    name: settings.name,
    hasAudio: settings.hasAudio,
    hasVideo: settings.hasVideo,
    outputMode: settings.outputMode,
    ...composedFields(settings),
    ...(composedWithVideo(settings) ? { shmSize: settings.shmSize } : {}),
  };
}

/** REST#the-recording-object. */
export function recordingJson(recording: RecordingState): Body {
  const { settings } = recording;
  return {
    id: recording.id,
    object: 'recording',
    name: settings.name,
    outputMode: settings.outputMode,
    hasAudio: settings.hasAudio,
    hasVideo: settings.hasVideo,
    ...composedFields(settings),
    sessionId: recording.sessionId,
    createdAt: recording.createdAt,
    size: recording.size,
    duration: recording.duration,
    url: recording.url,
    status: recording.status,
  };
}

/** REST#the-recording-object: recordingLayout, resolution and frameRate only for COMPOSED with video. */
export function composedFields(settings: RecordingSettings): Body {
  if (!composedWithVideo(settings)) return {};
  return {
    recordingLayout: settings.recordingLayout,
    resolution: settings.resolution,
    frameRate: settings.frameRate,
  };
}

export function composedWithVideo(settings: RecordingSettings): boolean {
  return settings.outputMode !== 'INDIVIDUAL' && settings.hasVideo;
}

/** REST#the-recording-object url: the extension of the file OpenVidu writes. */
function extension(settings: RecordingSettings): string {
  if (settings.outputMode === 'INDIVIDUAL') return 'zip';
  return settings.hasVideo ? 'mp4' : 'webm';
}
