// The player's default for MP4 is HLS (issue 14): the page loads its embedded hls.js, which plays
// /v/{id}/hls/master.m3u8 as the server repackages the MP4 on the fly; in chromium and firefox-esr it plays, seeks
// to 7 s and keeps playing with no error, and every request it made went to /v/{id}/hls/ (none for the progressive
// file). A clip with a mov_text subtitle track: hls.js lists the WebVTT rendition and its cues reach the video's
// text track. WebM stays progressive.
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

// 10 s with a mov_text subtitle track (from SRT), for hls.js's subtitle rendition.
const SUBS_CLIP = 'hls-subs.mp4';
const SRT = '1\n00:00:00,200 --> 00:00:04,000\nHello from the subtitles\n\n2\n00:00:05,000 --> 00:00:09,000\nSecond cue\n';
const WEBM = 'hls-clip.webm';

let tmp;
let server;
let proxy;
let id;
let subsId;
let webmId;
const results = [];

before(async () => {
  assert.ok(BIN, 'set MEDIAGATE_BIN to the mediagate binary');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-e2e-hls-'));
  const media = path.join(tmp, 'media');
  fs.mkdirSync(media);
  ffmpeg(ARGS, path.join(media, CLIP));
  fs.writeFileSync(path.join(tmp, 'subs.srt'), SRT);
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=duration=10:size=320x180:rate=30', '-f', 'lavfi', '-i',
    'sine=frequency=440:duration=10', '-i', path.join(tmp, 'subs.srt'), '-map', '0:v', '-map', '1:a', '-map', '2:s',
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '30', '-c:a', 'aac', '-c:s', 'mov_text',
    '-metadata:s:s:0', 'language=eng'], path.join(media, SUBS_CLIP));
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=duration=4:size=320x180:rate=30', '-c:v', 'libvpx-vp9', '-deadline',
    'realtime', '-cpu-used', '8'], path.join(media, WEBM));
  server = await startServer(['--storage', media, '--catalog', `sqlite:${path.join(tmp, 'catalog.db')}`,
    '--scan-on-start', '--access-log', 'off', '--hls-segment', '4']);
  proxy = await startRecordingProxy(server.port);
  const ids = await waitForItems(proxy.base, 3);
  [id, subsId, webmId] = [ids[CLIP], ids[SUBS_CLIP], ids[WEBM]];
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

    test('shows the subtitle rendition: hls.js lists it and its cues reach the text track', async () => {
      await p.goto(proxy.base + '/');
      await p.waitFor(() => document.body.dataset.libraryLoaded === 'true');
      await p.evaluate((i) => { location.hash = '#/item/' + i; }, subsId);
      await p.waitFor(() => {
        const v = document.querySelector('#player-media');
        return v && v.hls && v.hls.subtitleTracks.length > 0;
      });
      const r = await p.evaluate(async () => {
        const v = document.querySelector('#player-media');
        const tracks = v.hls.subtitleTracks.map((t) => `${t.lang} ${t.name}`);
        v.hls.subtitleTrack = 0;
        v.muted = true;
        await v.play();
        const deadline = Date.now() + 20000;
        let cues = [];
        while (Date.now() < deadline && !cues.includes('Second cue')) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          cues = [...v.textTracks].flatMap((t) => [...(t.cues || [])].map((c) => c.text));
        }
        const text = [...v.textTracks].filter((t) => t.kind === 'subtitles' || t.kind === 'captions');
        const first = text.flatMap((t) => [...(t.cues || [])]).find((c) => c.text === 'Hello from the subtitles');
        return { tracks, cues, textTracks: text.length, start: first ? first.startTime : null,
          stream: v.dataset.stream };
      });
      results.push(`${name}: subtitles ${JSON.stringify(r)}`);
      assert.equal(r.stream, 'hls.js');
      assert.deepEqual(r.tracks, ['eng eng 3']);
      assert.ok(r.textTracks >= 1);
      assert.ok(r.cues.includes('Hello from the subtitles') && r.cues.includes('Second cue'), r.cues.join('|'));
      assert.ok(Math.abs(r.start - 0.2) < 0.05, `first cue at ${r.start}`);
    });

    test('WebM stays progressive (the server makes no HLS of it)', async () => {
      await p.goto(proxy.base + '/');
      await p.waitFor(() => document.body.dataset.libraryLoaded === 'true');
      await p.evaluate((i) => { location.hash = '#/item/' + i; }, webmId);
      await p.waitFor(() => {
        const v = document.querySelector('#player-media');
        return v && v.dataset.stream;
      });
      const r = await p.evaluate(() => {
        const v = document.querySelector('#player-media');
        return { stream: v.dataset.stream, src: v.getAttribute('src') };
      });
      assert.deepEqual(r, { stream: 'progressive', src: `/v/${webmId}` });
    });
  });
}
