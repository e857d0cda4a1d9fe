// The player in HLS mode (issue 14): the page loads its embedded hls.js, which plays /v/{id}/hls/master.m3u8 as
// the server repackages the MP4 on the fly; in chromium and firefox-esr it plays, seeks to 7 s and keeps playing
// with no error, and every request it made went to /v/{id}/hls/ (none for the progressive file).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, BROWSERS, adapter, checkHlsPlayback, ffmpeg, startRecordingProxy, startServer, waitForItems }
  from './helpers.mjs';

// 20 s, a keyframe every second, 4 s segments: the seek to 7 s needs a segment the player had not loaded first.
const CLIP = 'hls-clip.mp4';
const ARGS = ['-f', 'lavfi', '-i', 'testsrc2=duration=20:size=640x360:rate=30', '-f', 'lavfi', '-i',
  'sine=frequency=440:duration=20', '-shortest', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
  '-g', '30', '-c:a', 'aac', '-movflags', '+faststart'];

let tmp;
let server;
let proxy;
let id;
const results = [];

before(async () => {
  assert.ok(BIN, 'set MEDIAGATE_BIN to the mediagate binary');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-e2e-hls-'));
  const media = path.join(tmp, 'media');
  fs.mkdirSync(media);
  ffmpeg(ARGS, path.join(media, CLIP));
  server = await startServer(['--storage', media, '--catalog', `sqlite:${path.join(tmp, 'catalog.db')}`,
    '--scan-on-start', '--access-log', 'off', '--hls-segment', '4']);
  proxy = await startRecordingProxy(server.port);
  id = Object.values(await waitForItems(proxy.base, 1))[0];
});

after(() => {
  if (proxy) proxy.close();
  if (server) server.proc.kill('SIGTERM');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  console.log('\ne2e HLS results:\n' + results.map((r) => '  ' + r).join('\n'));
});

for (const { name, kind, launch } of BROWSERS) {
  describe(name, () => {
    let browser;
    let p;
    before(async () => {
      let page;
      ({ browser, page } = await launch());
      p = adapter(kind, page);
    });
    after(async () => { if (browser) await browser.close(); });

    test('plays HLS with hls.js, seeks to 7 s and keeps playing', async () => {
      await checkHlsPlayback(p, { base: proxy.base, proxy, id, duration: 20, seekSegment: '1/seg-1.m4s' },
        (summary) => results.push(`${name}: ${summary}`));
    });
  });
}
