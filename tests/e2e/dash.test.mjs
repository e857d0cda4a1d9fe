// DASH played by a real DASH player (issue 14): shaka-player (pinned in package-lock.json, test-only) in chromium
// and firefox-esr loads /dash/<key>/manifest.mpd, the server's manifest over the same CMAF segments as HLS, plays,
// seeks to 7 s and keeps playing with no player or media error; it sees the video, the AAC audio and the WebVTT
// subtitle AdaptationSet. The test page and shaka's script come from a small server in this file, which
// forwards every other request to mediagate (one origin: no CORS involved).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, ffmpeg, forEachBrowser, playAndSeek, startServer, waitForItems } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHAKA = path.join(here, 'node_modules', 'shaka-player', 'dist', 'shaka-player.compiled.js');

// 20 s, a keyframe every second, 4 s segments (the seek to 7 s needs a segment not loaded first), AAC, and a
// mov_text subtitle track.
const CLIP = 'dash-clip.mp4';
const SRT = '1\n00:00:00,500 --> 00:00:03,000\nDASH subtitle one\n\n2\n00:00:08,000 --> 00:00:12,000\nDASH two\n';

const PAGE = `<!doctype html><meta charset="utf-8"><title>DASH</title>
<video id="player-media" muted playsinline></video>
<script src="/shaka-player.compiled.js"></script>`;

let tmp;
let server;
let front;
let base;
const results = [];

// Serves the test page and shaka's script, and forwards the rest to mediagate on `port`.
function startFront(port) {
  const agent = new http.Agent({ keepAlive: true });
  const srv = http.createServer((req, res) => {
    if (req.url === '/dash-test.html' || req.url === '/shaka-player.compiled.js') {
      const page = req.url === '/dash-test.html';
      res.writeHead(200, { 'Content-Type': page ? 'text/html; charset=utf-8' : 'text/javascript' });
      res.end(page ? PAGE : fs.readFileSync(SHAKA));
      return;
    }
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent },
      (ur) => {
        res.writeHead(ur.statusCode, ur.rawHeaders);
        ur.pipe(res);
        res.on('close', () => ur.destroy());
      });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    base: `http://127.0.0.1:${srv.address().port}`, close() { srv.close(); agent.destroy(); },
  })));
}

// In the page: shaka plays the manifest; what it saw of the tracks, and its errors.
async function loadDash(url) {
  const errors = [];
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) return { supported: false };
  const video = document.querySelector('#player-media');
  const player = new shaka.Player();
  await player.attach(video);
  player.addEventListener('error', (e) => errors.push(String(e.detail && e.detail.code)));
  window.dashErrors = errors;
  await player.load(url);
  const variants = player.getVariantTracks();
  return {
    supported: true,
    version: shaka.Player.version,
    videoCodecs: [...new Set(variants.map((t) => t.videoCodec))],
    audioCodecs: [...new Set(variants.map((t) => t.audioCodec))],
    text: player.getTextTracks().map((t) => `${t.language} ${t.mimeType}`),
    duration: video.duration,
    errors,
  };
}

before(async () => {
  assert.ok(BIN, 'set MEDIAGATE_BIN to the mediagate binary');
  assert.ok(fs.existsSync(SHAKA), `${SHAKA} is missing: tests/e2e/run.sh installs it (npm ci)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-e2e-dash-'));
  const media = path.join(tmp, 'media');
  fs.mkdirSync(media);
  fs.writeFileSync(path.join(tmp, 'subs.srt'), SRT);
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=duration=20:size=640x360:rate=30', '-f', 'lavfi', '-i',
    'sine=frequency=440:duration=20', '-i', path.join(tmp, 'subs.srt'), '-map', '0:v', '-map', '1:a', '-map', '2:s',
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '30', '-c:a', 'aac', '-c:s', 'mov_text',
    '-metadata:s:s:0', 'language=eng', '-movflags', '+faststart'], path.join(media, CLIP));
  server = await startServer(['--storage', media, '--catalog', `sqlite:${path.join(tmp, 'catalog.db')}`,
    '--scan-on-start', '--access-log', 'off', '--hls-segment', '4']);
  front = await startFront(server.port);
  base = front.base;
  await waitForItems(base, 1);
});

after(() => {
  if (front) front.close();
  if (server) server.proc.kill('SIGTERM');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  console.log('\ne2e DASH results:\n' + results.map((r) => '  ' + r).join('\n'));
});

forEachBrowser('', (ctx) => {
  test('shaka-player plays manifest.mpd, seeks to 7 s and keeps playing', async () => {
    const { name, p } = ctx;
    await p.goto(base + '/dash-test.html');
    const info = await p.evaluate(loadDash, `/dash/${CLIP}/manifest.mpd`);
    let r;
    try {
      r = await p.evaluate(playAndSeek, 7);
    } catch (e) {
      results.push(`${name}: FAILED (${e.message.split('\n')[0]}) ${JSON.stringify(info)}`);
      throw e;
    }
    const errors = await p.evaluate(() => window.dashErrors);
    results.push(`${name}: shaka ${info.version}: ${JSON.stringify(info)}; played to ${r.beforeSeek.toFixed(2)} s, ` +
      `seeked to ${r.afterSeek.toFixed(2)} s, then ${r.later.toFixed(2)} s`);
    assert.equal(info.supported, true);
    assert.deepEqual(info.errors, []);
    assert.deepEqual(errors, []);
    assert.equal(info.videoCodecs.length, 1);
    assert.match(info.videoCodecs[0], /^avc1\./);
    assert.deepEqual(info.audioCodecs, ['mp4a.40.2']);
    assert.deepEqual(info.text, ['en text/vtt']);
    assert.ok(Math.abs(r.duration - 20) < 0.3, `duration ${r.duration}`);
    assert.ok(r.afterSeek >= 6.5 && r.afterSeek <= 7.5, `seek landed at ${r.afterSeek}`);
    assert.ok(r.later > r.afterSeek + 0.5, 'playback went on after the seek');
    assert.equal(r.paused, false);
    assert.equal(r.error, null);
    assert.deepEqual(r.errors, []);
  });
});
