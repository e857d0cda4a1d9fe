// DASH played by a second DASH player, dash.js (issue 14; dash.test.mjs has shaka-player): another site's page (a node http server on a second 127.0.0.1
// origin, listed by --cors-origin) embeds dash.js 4.7.4 (pinned in package.json) and plays
// /dash/<key>/manifest.mpd as mediagate repackages the MP4 on the fly. In chromium and firefox-esr it plays, seeks
// to 7 s and keeps playing with no media or player error, and every request went to /dash/<key>/ (none for the
// progressive file). Run by tests/e2e/run.sh with the other *.test.mjs (CTest e2e_browsers).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { BIN, ffmpeg, forEachBrowser, playAndSeek, startRecordingProxy, startServer } from './helpers.mjs';

// 20 s, a keyframe every second, 4 s segments: the seek to 7 s needs a segment the player had not loaded first.
const KEY = 'dash-clip.mp4';
const ARGS = ['-f', 'lavfi', '-i', 'testsrc2=duration=20:size=640x360:rate=30', '-f', 'lavfi', '-i',
  'sine=frequency=440:duration=20', '-shortest', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
  '-g', '30', '-c:a', 'aac', '-movflags', '+faststart'];
const DASHJS = path.resolve('node_modules/dashjs/dist/dash.all.min.js');

let tmp;
let server;
let proxy;
let site;  // the embedding page's origin
const results = [];

// The embedding site: /?mpd=URL is a page whose video (id player-media, as playAndSeek expects) dash.js plays;
// dash.js errors are kept in window.dashErrors.
function startSite() {
  const page = `<!doctype html><meta charset="utf-8"><title>dash embed</title>
<video id="player-media" muted playsinline></video>
<script src="/dash.all.min.js"></script>
<script src="/embed.js"></script>`;
  const embed = `window.dashErrors = [];
const mpd = new URLSearchParams(location.search).get('mpd');
const player = dashjs.MediaPlayer().create();
player.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_WARNING } });
player.on(dashjs.MediaPlayer.events.ERROR, (e) => {
  window.dashErrors.push(JSON.stringify(e.error || e));
});
player.initialize(document.getElementById('player-media'), mpd, false);
window.dashPlayer = player;`;
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/dash.all.min.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      return fs.createReadStream(DASHJS).pipe(res);
    }
    if (url.pathname === '/embed.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      return res.end(embed);
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    return res.end(page);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    srv, origin: `http://127.0.0.1:${srv.address().port}`,
  })));
}

before(async () => {
  assert.ok(BIN, 'set MEDIAGATE_BIN to the mediagate binary');
  assert.ok(fs.existsSync(DASHJS), `${DASHJS} (npm ci of tests/e2e/package-lock.json)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-e2e-dashjs-'));
  const media = path.join(tmp, 'media');
  fs.mkdirSync(media);
  ffmpeg(ARGS, path.join(media, KEY));
  site = await startSite();
  server = await startServer(['--storage', media, '--catalog', `sqlite:${path.join(tmp, 'catalog.db')}`,
    '--access-log', 'off', '--hls-segment', '4', '--cors-origin', site.origin]);
  proxy = await startRecordingProxy(server.port);
});

after(() => {
  if (proxy) proxy.close();
  if (site) site.srv.close();
  if (server) server.proc.kill('SIGTERM');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  console.log('\ne2e dash.js results:\n' + results.map((r) => '  ' + r).join('\n'));
});

forEachBrowser('', (ctx) => {
  test('dash.js plays the DASH manifest, seeks to 7 s and keeps playing', async () => {
    const { name, p } = ctx;
    const mpd = `${proxy.base}/dash/${KEY}/manifest.mpd`;
    const start = proxy.log.length;
    await p.goto(`${site.origin}/?mpd=${encodeURIComponent(mpd)}`);
    await p.waitFor(() => window.dashPlayer && window.dashPlayer.isReady() &&
      document.querySelector('#player-media').readyState >= 1);
    let r;
    try {
      r = await p.evaluate(playAndSeek, 7);
    } catch (e) {
      const errors = await p.evaluate(() => window.dashErrors);
      results.push(`${name}: FAILED (${e.message.split('\n')[0]}; dash.js errors ${JSON.stringify(errors)})`);
      throw e;
    }
    const dashErrors = await p.evaluate(() => window.dashErrors);
    const requests = proxy.log.slice(start);
    const segments = requests.filter((e) => /\/seg-\d+\.m4s$/.test(e.url));
    results.push(`${name}: played to ${r.beforeSeek.toFixed(2)} s, seeked to ${r.afterSeek.toFixed(2)} s, ` +
      `then ${r.later.toFixed(2)} s; duration ${r.duration.toFixed(2)} s; ${segments.length} segment requests; ` +
      `dash.js errors ${dashErrors.length}`);
    assert.ok(r.afterSeek >= 6.5 && r.afterSeek <= 7.5, `seek landed at ${r.afterSeek}`);
    assert.ok(r.later > r.afterSeek + 0.5, 'playback went on after the seek');
    assert.equal(r.paused, false);
    assert.equal(r.error, null);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(dashErrors, []);
    assert.ok(Math.abs(r.duration - 20) < 0.3, `duration ${r.duration}`);
    assert.ok(requests.length > 0);
    for (const e of requests) {
      assert.match(e.url, new RegExp(`^/dash/${KEY.replace('.', '\\.')}/(manifest\\.mpd|\\d+/init\\.mp4|` +
        '\\d+/seg-\\d+\\.m4s)$'), `request for ${e.url}`);
      assert.ok([200, 206, 304].includes(e.status), `${e.url}: ${e.status}`);  // dash.js may ask a range of a segment
    }
    // Segment 1 of 4 s covers 4-8 s: the seek needed it (the player starts from segment 0).
    const tracks = new Set(segments.map((e) => e.url.split('/')[3]));
    assert.ok(tracks.size >= 2, `video and audio segments: ${[...tracks].join(' ')}`);
    for (const t of tracks) {
      assert.ok(segments.some((e) => e.url.endsWith(`/${t}/seg-1.m4s`)), segments.map((e) => e.url).join(' '));
    }
  });
});
