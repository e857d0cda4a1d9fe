// Private media embedded in another site (issue 12), in Debian's chromium through playwright-core (and firefox-esr
// through puppeteer-core): a page served from a second origin (a node http server on another 127.0.0.1 port)
// embeds <video crossorigin="anonymous"> of a signed link to a private item, plays it, seeks, draws a frame to a
// canvas and reads its pixels, and fetch()es a Range with If-None-Match (a header that forces a preflight). The
// same page served from an origin that --cors-origin does not list gets a tainted canvas or a media error, and
// its fetch() fails. Links are minted here with node:crypto after canonical_link_string
// (src/http/signed_link.cpp). Run by tests/e2e/run.sh with the other *.test.mjs (CTest e2e_browsers).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from './helpers.mjs';
import puppeteer from 'puppeteer-core';

const BIN = process.env.MEDIAGATE_BIN;
const FFMPEG = process.env.FFMPEG || '/usr/bin/ffmpeg';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];
// The mp4-faststart clip of library.test.mjs: 10 s of testsrc2 (a colourful picture) with a tone.
const CLIP_ARGS = ['-f', 'lavfi', '-i', 'testsrc2=duration=10:size=640x360:rate=30', '-f', 'lavfi', '-i',
  'sine=frequency=440:duration=10', '-shortest', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
  '-g', '30', '-c:a', 'aac', '-movflags', '+faststart'];
const KEY = 'private/clip.mp4';
const SECRET = crypto.randomBytes(32);
const SEEK_TO = 5;

let tmp;
let server;  // mediagate
let allowedPage;  // the page's server on an origin --cors-origin lists
let otherPage;  // the same page on an origin it does not list
let clip;  // the clip's bytes
const results = [];

// canonical_link_string of src/http/signed_link.cpp and the query of sign_link.
function mint(key, { exp = Math.floor(Date.now() / 1000) + 3600, kid = 'k1', secret = SECRET } = {}) {
  const canonical = `mediagate-link-v1\nGET\n${key}\n${exp}\nexact\n`;
  const sig = crypto.createHmac('sha256', secret).update(canonical, 'utf8').digest('base64url');
  return `exp=${exp}&kid=${kid}&sig=${sig}`;
}

function escapeHtml(s) {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

// A page that embeds the video named by its ?src= (the way another site embeds a player).
function startPageServer() {
  const srv = http.createServer((req, res) => {
    const src = new URL(req.url, 'http://x').searchParams.get('src') || '';
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(`<!doctype html><meta charset="utf-8"><title>embed</title>
<video id="v" crossorigin="anonymous" muted playsinline preload="auto" src="${escapeHtml(src)}"></video>
<canvas id="c"></canvas>`);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    srv, origin: `http://127.0.0.1:${srv.address().port}`,
  })));
}

before(async () => {
  assert.ok(BIN, 'set MEDIAGATE_BIN to the mediagate binary');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-e2e-private-'));
  const media = path.join(tmp, 'media');
  fs.mkdirSync(path.join(media, 'private'), { recursive: true });
  execFileSync(FFMPEG, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...CLIP_ARGS,
    path.join(media, KEY)], { stdio: 'inherit' });
  clip = fs.readFileSync(path.join(media, KEY));
  const keys = path.join(tmp, 'signing.keys');
  fs.writeFileSync(keys, `k1 ${SECRET.toString('hex')}\n`, { mode: 0o600 });
  allowedPage = await startPageServer();
  otherPage = await startPageServer();
  server = await startServer(['--storage', media, '--signed-prefix', 'private/', '--signing-keys', keys,
    '--cors-origin', `${allowedPage.origin},http://other.test`]);
});

after(() => {
  for (const p of [allowedPage, otherPage]) if (p) p.srv.close();
  if (server) server.proc.kill('SIGTERM');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  console.log('\ne2e private media results:\n' + results.map((r) => '  ' + r).join('\n'));
});

// In the page: plays the embedded video, seeks to `target`, draws the frame and reads its pixels.
async function playSeekDraw(target) {
  const v = document.querySelector('#v');
  const errors = [];
  if (v.error) errors.push(v.error.code);
  v.addEventListener('error', () => errors.push(v.error ? v.error.code : 'unknown'));
  const out = () => ({ errors, mediaError: v.error ? v.error.code : null, currentTime: v.currentTime,
    readyState: v.readyState });
  const until = (check, ms, what) => new Promise((resolve, reject) => {
    const started = performance.now();
    const tick = () => {
      if (errors.length) return reject(new Error('media error ' + errors.join(',')));
      if (check()) return resolve();
      if (performance.now() - started > ms) return reject(new Error(`timed out: ${what} (currentTime ${v.currentTime}, readyState ${v.readyState})`));
      setTimeout(tick, 50);
    };
    tick();
  });
  try {
    v.muted = true;
    await v.play();
    await until(() => v.currentTime > 0.3, 15000, 'playback to start');
    // Where the seek landed is read when 'seeked' fires: on a busy machine the code after the await runs a good
    // part of a second later, the video playing on (as playAndSeek in helpers.mjs).
    const seeked = new Promise((resolve) => v.addEventListener('seeked', () => resolve(v.currentTime), { once: true }));
    v.currentTime = target;
    const afterSeek = await Promise.race([seeked,
      new Promise((_, reject) => setTimeout(() => reject(new Error('no seeked event')), 15000))]);
    await until(() => v.readyState >= 2, 15000, 'a frame after the seek');
    v.pause();
    const c = document.querySelector('#c');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(v, 0, 0);
    let pixels = null;
    let canvasError = null;
    try {
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let lit = 0;
      const colours = new Set();
      for (let i = 0; i < d.length; i += 4 * 97) {
        if (d[i] + d[i + 1] + d[i + 2] > 30) lit += 1;
        colours.add((d[i] >> 5) * 64 + (d[i + 1] >> 5) * 8 + (d[i + 2] >> 5));
      }
      pixels = { length: d.length, lit, colours: colours.size };
    } catch (e) {
      canvasError = e.name;
    }
    return { ...out(), afterSeek, width: c.width, height: c.height, pixels, canvasError };
  } catch (e) {
    return { ...out(), failure: String(e && e.message ? e.message : e) };
  }
}

// In the page: a Range fetch with If-None-Match (not a CORS-safelisted header: the browser sends a preflight),
// then the same with the ETag it read (exposed by Access-Control-Expose-Headers): a 304.
async function fetchRange(url) {
  try {
    const r = await fetch(url, { headers: { Range: 'bytes=100-199', 'If-None-Match': '"not-this-one"' } });
    const body = new Uint8Array(await r.arrayBuffer());
    const etag = r.headers.get('ETag');
    const again = await fetch(url, { headers: { Range: 'bytes=100-199', 'If-None-Match': etag } });
    return { status: r.status, contentRange: r.headers.get('Content-Range'), etag,
      body: Array.from(body), revalidated: again.status };
  } catch (e) {
    return { error: `${e.name}: ${e.message}` };
  }
}

function adapter(kind, page) {
  return {
    goto: (url) => page.goto(url, { waitUntil: 'load' }),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
  };
}

function browserSuite(name, kind, launch) {
  describe(name, () => {
    let browser;
    let p;
    before(async () => {
      let page;
      ({ browser, page } = await launch());
      p = adapter(kind, page);
    });
    after(async () => { if (browser) await browser.close(); });

    const media = () => `http://127.0.0.1:${server.port}/media/${KEY}?${mint(KEY)}`;

    test('a page on an allowed origin plays, seeks and draws a signed private video, and fetches a Range', async () => {
      const url = media();
      const logStart = server.log().length;
      await p.goto(`${allowedPage.origin}/?src=${encodeURIComponent(url)}`);
      const r = await p.evaluate(playSeekDraw, SEEK_TO);
      results.push(`${name}: allowed origin: ${JSON.stringify(r)}`);
      assert.equal(r.failure, undefined, JSON.stringify(r));
      assert.deepEqual(r.errors, []);
      assert.ok(r.afterSeek >= SEEK_TO - 0.5 && r.afterSeek <= SEEK_TO + 0.6, `seek landed at ${r.afterSeek}`);
      assert.equal(r.canvasError, null, 'reading the canvas threw: the video tainted it');
      assert.equal(r.pixels.length, 640 * 360 * 4);
      assert.ok(r.pixels.lit > 100 && r.pixels.colours > 4, `the frame looks empty: ${JSON.stringify(r.pixels)}`);

      const f = await p.evaluate(fetchRange, url);
      results.push(`${name}: allowed origin fetch: ${JSON.stringify({ ...f, body: f.body ? f.body.length : null })}`);
      assert.equal(f.error, undefined, f.error);
      assert.equal(f.status, 206);
      assert.equal(f.contentRange, `bytes 100-199/${clip.length}`);
      assert.deepEqual(Buffer.from(f.body), clip.subarray(100, 200));
      assert.match(f.etag || '', /^"/, 'the ETag is not exposed');
      assert.equal(f.revalidated, 304);
      // The preflight did happen, was answered 204, and the log shows the link without its signature.
      const log = server.log().slice(logStart);
      assert.match(log, /"OPTIONS \/media\/private\/clip\.mp4\?exp=\d+&kid=k1&sig=REDACTED" range="" 204 /, log);
      assert.match(log, /"GET \/media\/private\/clip\.mp4\?exp=\d+&kid=k1&sig=REDACTED" range="bytes=100-199" 206 100 /);
      assert.doesNotMatch(log, new RegExp(url.split('sig=')[1]), 'the signature is in the access log');
    });

    test('the same page on an origin not allowed cannot read the video or fetch it', async () => {
      // A link of its own (another expiry): chromium's media cache shares data by URL, and would otherwise hand
      // this page the frames it fetched, with CORS, for the allowed origin's page a moment ago.
      const exp = Math.floor(Date.now() / 1000) + 3607;
      const url = `http://127.0.0.1:${server.port}/media/${KEY}?${mint(KEY, { exp })}`;
      const logStart = server.log().length;
      await p.goto(`${otherPage.origin}/?src=${encodeURIComponent(url)}`);
      const r = await p.evaluate(playSeekDraw, SEEK_TO);
      results.push(`${name}: other origin: ${JSON.stringify(r)}`);
      assert.equal(r.pixels ?? null, null, `the page read the pixels: ${JSON.stringify(r)}`);
      assert.ok(r.canvasError === 'SecurityError' || r.mediaError !== null || r.errors.length > 0,
        `neither a tainted canvas nor a media error: ${JSON.stringify(r)}`);
      const f = await p.evaluate(fetchRange, url);
      results.push(`${name}: other origin fetch: ${JSON.stringify(f)}`);
      assert.match(f.error || '', /^TypeError/, `fetch from another origin succeeded: ${JSON.stringify(f)}`);
      // The link was good and the server answered: it is the browser that refused, for want of CORS headers
      // (the preflight was answered 204 without naming the origin, so the fetch itself was never sent).
      const log = server.log().slice(logStart);
      // 200/206, or 304 when the browser revalidates a copy it kept from the allowed origin's test.
      assert.match(log, /"GET \/media\/private\/clip\.mp4\?exp=\d+&kid=k1&sig=REDACTED" range="[^"]*" (20[06]|304) /, log);
      assert.match(log, /"OPTIONS \/media\/private\/clip\.mp4\?exp=\d+&kid=k1&sig=REDACTED" range="" 204 /, log);
      // Not this link's Range fetch. (firefox-esr may still revalidate, 304, the allowed origin's earlier fetch of
      // its own link in this time: another exp.)
      assert.doesNotMatch(log, new RegExp(`exp=${exp}&[^"]*" range="bytes=100-199"`), log);
    });

    test('an allowed origin without a valid link gets a media error', async () => {
      const bad = `http://127.0.0.1:${server.port}/media/${KEY}?${mint(KEY, { exp: 1 })}`;
      await p.goto(`${allowedPage.origin}/?src=${encodeURIComponent(bad)}`);
      const r = await p.evaluate(playSeekDraw, SEEK_TO);
      results.push(`${name}: expired link: ${JSON.stringify(r)}`);
      assert.ok(r.mediaError !== null || r.errors.length > 0, JSON.stringify(r));
      assert.equal(r.pixels ?? null, null);
      const f = await p.evaluate(async (u) => {
        const res = await fetch(u, { headers: { Range: 'bytes=0-9' } });
        return { status: res.status, text: await res.text() };
      }, bad);
      // CORS headers are on the 403 too: the page can read why.
      assert.deepEqual(f, { status: 403, text: 'forbidden: this media needs a valid signed link (expired)\n' });
    });
  });
}

browserSuite('private media: chromium (playwright-core)', 'playwright', async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const context = await browser.newContext();
  const page = await context.newPage();
  return { browser, page };
});

browserSuite('private media: firefox-esr (puppeteer-core, WebDriver BiDi)', 'puppeteer', async () => {
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
      'app.update.enabled': false,
      'network.captive-portal-service.enabled': false,
    },
  });
  const page = await browser.newPage();
  return { browser, page };
});
