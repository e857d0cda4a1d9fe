// The player in HLS mode (issue 14): the page loads its embedded hls.js, which plays /v/{id}/hls/master.m3u8 as
// the server repackages the MP4 on the fly; in chromium and firefox-esr it plays, seeks to 7 s and keeps playing
// with no error, and every request it made went to /v/{id}/hls/ (none for the progressive file).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, BROWSERS, adapter, ffmpeg, playAndSeek, startRecordingProxy, startServer, waitForItems }
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
      await p.goto(proxy.base + '/');
      await p.waitFor(() => document.body.dataset.libraryLoaded === 'true');
      await p.evaluate(() => localStorage.setItem('mediagate.stream', 'hls'));
      const start = proxy.log.length;
      await p.evaluate((i) => { location.hash = '#/item/' + i; }, id);
      await p.waitFor(() => {
        const v = document.querySelector('#player-media');
        return v && v.dataset.stream && v.readyState >= 1;
      });
      const stream = await p.evaluate(() => document.querySelector('#player-media').dataset.stream);
      let r;
      try {
        r = await p.evaluate(playAndSeek, 7);
      } catch (e) {
        results.push(`${name}: FAILED (${e.message.split('\n')[0]})`);
        throw e;
      }
      const requests = proxy.log.slice(start).filter((e) => e.url.startsWith(`/v/${id}`));
      const segments = requests.filter((e) => /\/seg-\d+\.m4s$/.test(e.url));
      results.push(`${name}: ${stream}: played to ${r.beforeSeek.toFixed(2)} s, seeked to ${r.afterSeek.toFixed(2)} s, ` +
        `then ${r.later.toFixed(2)} s; duration ${r.duration.toFixed(2)} s; ${segments.length} segment requests`);
      assert.equal(stream, 'hls.js');
      assert.ok(r.afterSeek >= 6.5 && r.afterSeek <= 7.5, `seek landed at ${r.afterSeek}`);
      assert.ok(r.later > r.afterSeek + 0.5, 'playback went on after the seek');
      assert.equal(r.paused, false);
      assert.equal(r.error, null);
      assert.deepEqual(r.errors, []);
      assert.ok(Math.abs(r.duration - 20) < 0.3, `duration ${r.duration}`);
      const shownError = await p.evaluate(() => document.querySelector('#player-error').hidden
        ? null : document.querySelector('#player-error').textContent);
      assert.equal(shownError, null);
      // Everything came through the HLS resources, each answered 200 (or 304 on revalidation).
      assert.ok(requests.length > 0);
      for (const e of requests) {
        assert.match(e.url, new RegExp(`^/v/${id}/hls/(master\\.m3u8|\\d+\\.m3u8|\\d+/init\\.mp4|\\d+/seg-\\d+\\.m4s)$`),
          `request for ${e.url}`);
        assert.ok(e.status === 200 || e.status === 304, `${e.url}: ${e.status}`);
      }
      // The seek to 7 s fetched the video segment that holds it (4 s segments: seg-1, 4..8 s).
      assert.ok(segments.some((e) => /\/1\/seg-1\.m4s$/.test(e.url)), segments.map((e) => e.url).join(' '));
    });
  });
}
