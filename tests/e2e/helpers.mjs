// What the browser tests share (library.test.mjs, s3.test.mjs): the browsers, the mediagate process, the
// recording proxy between browser and server, the page adapter, and the seek test that checks the network.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import { after, before, describe } from 'node:test';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

export const BIN = process.env.MEDIAGATE_BIN;
export const FFMPEG = process.env.FFMPEG || '/usr/bin/ffmpeg';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];

// A clip large enough that no browser holds it whole before the seek: 40 s at a constant 6 Mbit/s (x264's CBR
// filler) is 30 MB, while browsers read about 10 s ahead. Seeking to 32 s needs bytes about 24 MB in, so a new
// Range request, which must be answered 206 from that offset.
export const SEEK_CLIP = 'seek-cbr.mp4';
export const SEEK_ARGS = ['-f', 'lavfi', '-i', 'testsrc2=duration=40:size=640x360:rate=25', '-c:v', 'libx264',
  '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '25', '-b:v', '6M', '-minrate', '6M', '-maxrate', '6M',
  '-bufsize', '1M', '-x264-params', 'nal-hrd=cbr:force-cfr=1', '-movflags', '+faststart'];
export const SEEK_TO = 32;

export function ffmpeg(args, out) {
  execFileSync(FFMPEG, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args, out], { stdio: 'inherit' });
}

// Forwards every request to the server and records, per response, the Range sent, the status, Content-Range,
// Content-Length and the body bytes the server sent through it (fewer than Content-Length when the browser hung up).
export function startRecordingProxy(port) {
  const log = [];
  const agent = new http.Agent({ keepAlive: true });
  const srv = http.createServer((req, res) => {
    const entry = { method: req.method, url: req.url, range: req.headers.range || null, status: null,
      contentRange: null, contentLength: null, bytes: 0, done: false, at: Date.now() };
    log.push(entry);
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent },
      (ur) => {
        entry.status = ur.statusCode;
        entry.contentRange = ur.headers['content-range'] || null;
        entry.contentLength = ur.headers['content-length'] === undefined ? null : Number(ur.headers['content-length']);
        res.writeHead(ur.statusCode, ur.rawHeaders);
        ur.on('data', (chunk) => { entry.bytes += chunk.length; });
        ur.on('end', () => { entry.done = true; });
        ur.pipe(res);
        res.on('close', () => ur.destroy());
      });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    srv, agent, log, base: `http://127.0.0.1:${srv.address().port}`,
    close() { srv.close(); agent.destroy(); },
  })));
}

// Starts `mediagate serve --listen 127.0.0.1:0 ARGS...` and resolves once it printed its address.
export function startServer(args, env = process.env) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let log = '';
    const timer = setTimeout(() => reject(new Error('mediagate did not start within 20 s:\n' + log)), 20000);
    proc.stderr.on('data', (d) => { log += d; });
    proc.stdout.on('data', (d) => {
      log += d;
      const m = log.match(/mediagate listening on http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]), log: () => log });
      }
    });
    proc.on('exit', (code) => reject(new Error(`mediagate exited with ${code}:\n${log}`)));
  });
}

export async function waitFor(what, fn, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// Every item of the server at BASE once the scan found COUNT of them and probed them all: key -> id.
export async function waitForItems(base, count) {
  const items = await waitFor('the scan and probes', async () => {
    const list = await (await fetch(base + '/api/media?per_page=100')).json();
    return list.items.length === count && list.items.every((i) => i.probed) ? list.items : null;
  });
  return Object.fromEntries(items.map((i) => [i.key, i.id]));
}

export async function launchChromium() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const context = await browser.newContext();
  const page = await context.newPage();
  return { browser, page };
}

export async function launchFirefox() {
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      'media.autoplay.default': 0,  // allowed: the test plays media from script
      'media.autoplay.blocking_policy': 0,
      // Read about 8 s ahead instead of 60 (the defaults would hold the whole seek clip before the seek).
      'media.cache_readahead_limit': 8,
      'media.cache_resume_threshold': 4,
      'app.update.enabled': false,
      'network.captive-portal-service.enabled': false,
    },
  });
  const page = await browser.newPage();
  return { browser, page };
}

// Every browser a suite runs in: name, automation kind (for adapter) and how to launch it.
export const BROWSERS = [
  { name: 'chromium (playwright-core)', kind: 'playwright', launch: launchChromium },
  { name: 'firefox-esr (puppeteer-core, WebDriver BiDi)', kind: 'puppeteer', launch: launchFirefox },
];

// Everything a test does with a page, for both automation libraries.
export function adapter(kind, page) {
  return {
    goto: (url) => page.goto(url, { waitUntil: 'load' }),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitFor: (fn, arg, timeout = 30000) => (kind === 'playwright' ? page.waitForFunction(fn, arg, { timeout })
      : page.waitForFunction(fn, { timeout, polling: 100 }, arg)),
    click: (sel) => page.click(sel),
    type: (sel, text) => (kind === 'playwright' ? page.fill(sel, text) : page.type(sel, text)),
    focus: (sel) => page.focus(sel),
    press: (key) => page.keyboard.press(key),
    setFile: async (sel, file) => {
      if (kind === 'playwright') return page.setInputFiles(sel, file);
      const input = await page.$(sel);
      return input.uploadFile(file);
    },
    screenshot: (file) => page.screenshot({ path: file, fullPage: true }),
    viewport: (width, height) => (kind === 'playwright' ? page.setViewportSize({ width, height })
      : page.setViewport({ width, height })),
  };
}

// In the page: plays the open item, seeks to `target` and reports what the element did.
export async function playAndSeek(target) {
  const v = document.querySelector('#player-media');
  const errors = [];
  v.addEventListener('error', () => errors.push(v.error ? v.error.code : 'unknown'));
  const until = (check, ms, what) => new Promise((resolve, reject) => {
    const started = performance.now();
    const tick = () => {
      if (errors.length) return reject(new Error('media error ' + errors.join(',')));
      if (check()) return resolve();
      if (performance.now() - started > ms) return reject(new Error('timed out: ' + what + ` (currentTime ${v.currentTime}, readyState ${v.readyState}, networkState ${v.networkState})`));
      setTimeout(tick, 50);
    };
    tick();
  });
  v.muted = true;  // autoplay policies allow muted playback
  await v.play();
  await until(() => v.currentTime > 0.3, 15000, 'playback to start');
  const beforeSeek = v.currentTime;
  // Where the seek landed is read when 'seeked' fires: the element plays on from there, and on a busy machine
  // the code after the await runs a good part of a second later.
  const seeked = new Promise((resolve) => v.addEventListener('seeked', () => resolve(v.currentTime), { once: true }));
  v.currentTime = target;
  const afterSeek = await Promise.race([seeked,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no seeked event')), 15000))]);
  await until(() => v.currentTime > afterSeek + 0.5, 15000, 'playback to go on after the seek');
  return { beforeSeek, afterSeek, later: v.currentTime, paused: v.paused, duration: v.duration,
    error: v.error ? v.error.code : null, errors, readyState: v.readyState };
}

// Opens item ID (SIZE bytes, the SEEK_CLIP) from the library page at BASE through PROXY, plays it, seeks to
// SEEK_TO and checks what went over the network: every media response an exact 206 for the Range asked, the
// first read short of the whole file, and a new Range request past the middle after the seek.
// REPORT gets the summary before the assertions, so a failure still shows what went over the network.
export async function checkSeekOverNetwork(p, { base, proxy, id, size }, report = () => {}) {
  const target = `/v/${id}`;
  await p.goto(base + '/');
  await p.waitFor(() => document.body.dataset.libraryLoaded === 'true');
  // The page plays MP4 with HLS by default (issue 14): this check is of the progressive path.
  await p.evaluate(() => localStorage.setItem('mediagate.stream', 'progressive'));
  const start = proxy.log.length;
  await p.evaluate((i) => { location.hash = '#/item/' + i; }, id);
  await p.waitFor((t) => {
    const v = document.querySelector('#player-media');
    return v && v.getAttribute('src') === t;
  }, target);
  const r = await p.evaluate(playAndSeek, SEEK_TO);
  const seen = proxy.log.slice(start).filter((e) => e.url === target && e.method === 'GET');
  const lines = seen.map((e) => `Range ${e.range} -> ${e.status} ${e.contentRange || ''} ` +
    `Content-Length ${e.contentLength}, ${e.bytes} bytes${e.done ? '' : ' (browser hung up)'}`);
  const summary = `${SEEK_CLIP} (${size} bytes), seek to ${SEEK_TO} s landed at ${r.afterSeek.toFixed(2)} s; ` +
    `responses:\n    ${lines.join('\n    ')}`;
  report(summary);
  const all = lines.join('\n');
  assert.ok(r.afterSeek >= SEEK_TO - 0.5 && r.afterSeek <= SEEK_TO + 1.1, `seek landed at ${r.afterSeek}`);
  assert.ok(r.later > r.afterSeek + 0.5, 'playback went on after the seek');
  assert.deepEqual(r.errors, []);
  assert.ok(seen.length >= 2, `expected a request after the seek:\n${all}`);
  for (const e of seen) {
    // Every media response is an exact 206 for the range asked (browsers always send Range for media).
    assert.ok(e.range, `a request without Range:\n${all}`);
    const m = /^bytes=(\d+)-(\d*)$/.exec(e.range);
    assert.ok(m, `unexpected Range ${e.range}`);
    const first = Number(m[1]);
    const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    assert.equal(e.status, 206, all);
    assert.equal(e.contentRange, `bytes ${first}-${last}/${size}`, all);
    assert.equal(e.contentLength, last - first + 1, all);
    assert.ok(e.bytes <= e.contentLength, all);
    if (e.done) assert.equal(e.bytes, e.contentLength, `a response that ended short:\n${all}`);
  }
  // The first read did not fetch the whole clip, and the seek asked for bytes far into it: the position of
  // 32 s in a constant-bitrate clip is about 32/40 of the file.
  assert.ok(seen[0].bytes < size, `the browser read all ${size} bytes before seeking: the seek proves nothing`);
  const far = seen.slice(1).filter((e) => Number(/^bytes=(\d+)/.exec(e.range)[1]) > size * 0.5);
  assert.ok(far.length >= 1, `no Range request past the middle of the file after the seek:\n${all}`);
  assert.ok(far.some((e) => e.bytes > 0), 'the seek request got no bytes');
  await p.evaluate(() => localStorage.removeItem('mediagate.stream'));
}

// Issue 14: opens item ID from the library page at BASE (through PROXY) with the player's default mode (HLS for
// MP4), plays it with hls.js, seeks to 7 s and checks that it keeps playing with no error, that every request went
// to /v/{id}/hls/ and was answered 200 or 304, that each media playlist's segments were fetched (the audio's
// too), and that the seek fetched SEEKSEGMENT (e.g. '1/seg-1.m4s').
// REPORT gets a summary before the assertions.
export async function checkHlsPlayback(p, { base, proxy, id, duration, seekSegment }, report = () => {}) {
  await p.goto(base + '/');
  await p.waitFor(() => document.body.dataset.libraryLoaded === 'true');
  await p.evaluate(() => localStorage.removeItem('mediagate.stream'));
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
    report(`FAILED (${e.message.split('\n')[0]})`);
    throw e;
  }
  // The player keeps fetching ahead: give the requests made so far time to get their answers' status.
  const requests = proxy.log.slice(start).filter((e) => e.url.startsWith(`/v/${id}`));
  for (let i = 0; i < 100 && requests.some((e) => e.status === null); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const segments = requests.filter((e) => /\/seg-\d+\.m4s$/.test(e.url));
  report(`${stream}: played to ${r.beforeSeek.toFixed(2)} s, seeked to ${r.afterSeek.toFixed(2)} s, ` +
    `then ${r.later.toFixed(2)} s; duration ${r.duration.toFixed(2)} s; ${segments.length} segment requests`);
  assert.equal(stream, 'hls.js');
  assert.ok(r.afterSeek >= 6.5 && r.afterSeek <= 7.5, `seek landed at ${r.afterSeek}`);
  assert.ok(r.later > r.afterSeek + 0.5, 'playback went on after the seek');
  assert.equal(r.paused, false);
  assert.equal(r.error, null);
  assert.deepEqual(r.errors, []);
  assert.ok(Math.abs(r.duration - duration) < 0.3, `duration ${r.duration}`);
  const shownError = await p.evaluate(() => (document.querySelector('#player-error').hidden
    ? null : document.querySelector('#player-error').textContent));
  assert.equal(shownError, null);
  assert.ok(requests.length > 0);
  // Every request for the media goes through HLS. The page's pictures of the item (its poster, the seek
  // strip's thumbnails track) are not media requests.
  for (const e of requests.filter((r) => !new RegExp(`^/v/${id}/(poster|thumbs(\\.vtt|-\\d+\\.jpg))(\\?.*)?$`).test(r.url))) {
    assert.match(e.url, new RegExp(`^/v/${id}/hls/(master\\.m3u8|\\d+\\.m3u8|\\d+/init\\.mp4|\\d+/seg-\\d+\\.(m4s|vtt))$`),
      `request for ${e.url}`);
    assert.ok(e.status === 200 || e.status === 304, `${e.url}: ${e.status}`);
  }
  assert.ok(segments.some((e) => e.url.endsWith('/' + seekSegment)), segments.map((e) => e.url).join(' '));
  // Every media playlist loaded has its segments played: the audio is a rendition of its own (EXT-X-MEDIA),
  // which a player without an audio stream controller (hls.js's light build) lists but never fetches.
  for (const e of requests) {
    const track = /\/hls\/(\d+)\.m3u8$/.exec(e.url);
    if (track) {
      assert.ok(segments.some((s) => s.url.includes(`/hls/${track[1]}/seg-`)),
        `no segment of track ${track[1]}: ${segments.map((s) => s.url).join(' ')}`);
    }
  }
}

// One suite per browser of BROWSERS, named NAME + SUFFIX: the browser starts before the suite's tests and closes
// after them. body(ctx) declares the tests; inside a test, ctx.p is the page's adapter and ctx.name the browser.
export function forEachBrowser(suffix, body) {
  for (const { name, kind, launch } of BROWSERS) {
    describe(name + suffix, () => {
      const ctx = { name, kind, p: null, browser: null };
      before(async () => {
        const { browser, page } = await launch();
        ctx.browser = browser;
        ctx.page = page;
        ctx.p = adapter(kind, page);
      });
      after(async () => { if (ctx.browser) await ctx.browser.close(); });
      body(ctx);
    });
  }
}
