/**
 * The `cameras` section of the gateway configuration: defaults, and errors that name the field.
 */
import { describe, expect, it } from '@jest/globals';
import { parseGatewayConfig } from '../../edge-component/config.js';
import { GatewayConfigError } from '../../edge-component/errors.js';
import { ffmpegArgs } from '../../edge-component/frames/sources/index.js';

const base = {
  thingName: 'gw-frames',
  aws: { region: 'eu-central-1' },
  storage: { bucket: 'data-bucket' },
  credentials: { source: 'tes' },
};

function parse(cameras: unknown) {
  return parseGatewayConfig({ ...base, cameras });
}

function messageOf(cameras: unknown): string {
  try {
    parse(cameras);
  } catch (err) {
    if (err instanceof GatewayConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a GatewayConfigError');
}

describe('cameras configuration', () => {
  it('is empty by default and fills in defaults per camera', () => {
    expect(parseGatewayConfig(base).cameras).toEqual([]);
    const [cam] = parse([
      { id: 'dock-1', source: { type: 'http-snapshot', url: 'http://10.0.0.5/snap.jpg' } },
    ]).cameras;
    expect(cam).toMatchObject({
      id: 'dock-1',
      fps: 1,
      maxWidth: 1920,
      maxHeight: 1080,
      format: 'jpeg',
      quality: 80,
      changeThreshold: 0.02,
      stallAfterIntervals: 10,
      identification: false,
      masking: { faces: true, style: 'blur', zones: [], detector: 'tiny', minConfidence: 0.3, padding: 0.25 },
      source: { type: 'http-snapshot', timeoutMs: 10_000 },
    });
  });

  it('accepts every source type, zones as rectangles and polygons, and identification', () => {
    const cams = parse([
      { id: 'a', source: { type: 'ffmpeg', url: 'rtsp://10.0.0.7/stream1' }, fps: 2, format: 'webp' },
      { id: 'b', source: { type: 'ffmpeg', device: '/dev/video0', inputArgs: ['-input_format', 'mjpeg'] } },
      { id: 'c', source: { type: 'ffmpeg', lavfi: 'testsrc=size=640x480:rate=5' } },
      { id: 'd', source: { type: 'directory', dir: '/srv/ftp/cam-d' } },
      {
        id: 'e',
        source: { type: 'synthetic', pattern: 'faces' },
        masking: {
          style: 'pixelate',
          zones: [
            { rect: { left: 0, top: 0, width: 0.25, height: 0.5 } },
            {
              polygon: [
                { x: 0.5, y: 0.5 },
                { x: 1, y: 0.5 },
                { x: 0.75, y: 1 },
              ],
            },
          ],
        },
      },
      { id: 'f', source: { type: 'synthetic' }, identification: true },
    ]).cameras;
    expect(cams.map((c) => c.source.type)).toEqual([
      'ffmpeg',
      'ffmpeg',
      'ffmpeg',
      'directory',
      'synthetic',
      'synthetic',
    ]);
    expect(cams[4]!.masking.zones).toHaveLength(2);
    expect(cams[5]!.identification).toBe(true);
    // RTSP over TCP; frame rate and MJPEG output on stdout.
    const c0 = cams[0]!;
    if (c0.source.type !== 'ffmpeg') throw new Error('ffmpeg expected');
    expect(ffmpegArgs(c0.source, 2)).toEqual([
      '-hide_banner',
      '-loglevel',
      'error',
      '-nostdin',
      '-rtsp_transport',
      'tcp',
      '-i',
      'rtsp://10.0.0.7/stream1',
      '-an',
      '-vf',
      'fps=2',
      '-f',
      'image2pipe',
      '-vcodec',
      'mjpeg',
      '-q:v',
      '3',
      '-',
    ]);
  });

  it.each([
    [
      [{ id: 'a', source: { type: 'http-snapshot', url: 'ftp://x/y.jpg' } }],
      'cameras.0.source.url: must be an http:// or https:// URL',
    ],
    [
      [
        { id: 'a', source: { type: 'synthetic' } },
        { id: 'b', source: { type: 'http-snapshot', url: 'not a url' } },
      ],
      'cameras.1.source.url: must be an http:// or https:// URL',
    ],
    [
      [{ id: 'a', source: { type: 'webcam' } }],
      "cameras.0.source.type: must be 'ffmpeg', 'http-snapshot', 'directory' or 'synthetic'",
    ],
    [[{ id: 'a' }], 'cameras.0.source: is required'],
    [
      [{ id: 'a', source: { type: 'ffmpeg' } }],
      'cameras.0.source.url: one of url, device or lavfi is required',
    ],
    [
      [{ id: 'a', source: { type: 'ffmpeg', url: 'rtsp://h/s', device: '/dev/video0' } }],
      'cameras.0.source.device: only one of url, device or lavfi may be set',
    ],
    [[{ id: 'a/b', source: { type: 'synthetic' } }], 'cameras.0.id: must be 1 to 64 characters'],
    [
      [
        { id: 'a', source: { type: 'synthetic' } },
        { id: 'a', source: { type: 'synthetic' } },
      ],
      "cameras.1.id: duplicate camera id 'a'",
    ],
    [[{ id: 'a', source: { type: 'synthetic' }, fps: 0 }], 'cameras.0.fps: must be greater than 0'],
    [
      [{ id: 'a', source: { type: 'synthetic' }, quality: 101 }],
      'cameras.0.quality: must be an integer from 1 to 100',
    ],
    [
      [{ id: 'a', source: { type: 'synthetic' }, format: 'png' }],
      "cameras.0.format: must be 'jpeg' or 'webp'",
    ],
    [
      [{ id: 'a', source: { type: 'synthetic' }, changeThreshold: 2 }],
      'cameras.0.changeThreshold: must be from 0 to 1',
    ],
    [
      [{ id: 'a', source: { type: 'synthetic' }, masking: { style: 'smudge' } }],
      "cameras.0.masking.style: must be 'blur' or 'pixelate'",
    ],
    [
      [
        {
          id: 'a',
          source: { type: 'synthetic' },
          masking: { zones: [{ rect: { left: 0.5, top: 0, width: 0.6, height: 1 } }] },
        },
      ],
      'cameras.0.masking.zones.0.rect.width: left + width must not exceed 1',
    ],
    [
      [
        {
          id: 'a',
          source: { type: 'synthetic' },
          masking: {
            zones: [
              {
                polygon: [
                  { x: 0, y: 0 },
                  { x: 1, y: 1 },
                ],
              },
            ],
          },
        },
      ],
      'cameras.0.masking.zones.0.polygon: must have at least 3 points',
    ],
    [
      [
        {
          id: 'a',
          source: { type: 'synthetic' },
          masking: {
            zones: [
              {
                polygon: [
                  { x: 0, y: 0 },
                  { x: 1.5, y: 1 },
                  { x: 0, y: 1 },
                ],
              },
            ],
          },
        },
      ],
      'cameras.0.masking.zones.0.polygon.1.x: must be from 0 to 1',
    ],
    [
      [{ id: 'a', source: { type: 'synthetic' }, masking: { zones: [{}] } }],
      'cameras.0.masking.zones.0.rect: exactly one of rect or polygon is required',
    ],
    [
      [{ id: 'a', source: { type: 'synthetic' }, identification: true, masking: { faces: true } }],
      'cameras.0.masking: must not be set when identification is true',
    ],
    [
      [{ id: 'a', source: { type: 'synthetic' }, identification: 'yes' }],
      'cameras.0.identification: must be true or false',
    ],
    [[{ id: 'a', source: { type: 'synthetic' }, zoom: 2 }], 'cameras.0.zoom: is not a known field'],
    [
      [{ id: 'a', source: { type: 'directory', dir: '/x', recursive: true } }],
      'cameras.0.source.recursive: is not a known field',
    ],
    [{ id: 'a' }, 'cameras: must be an array of cameras'],
  ])('refuses %j, naming the field', (cameras, message) => {
    expect(messageOf(cameras)).toContain(message);
  });

  it('resolves a relative directory against the configuration file', () => {
    const c = parseGatewayConfig(
      { ...base, cameras: [{ id: 'ftp', source: { type: 'directory', dir: 'incoming' } }] },
      { baseDir: '/etc/edgefleet' },
    );
    expect(c.cameras[0]!.source).toMatchObject({ dir: '/etc/edgefleet/incoming' });
  });
});
