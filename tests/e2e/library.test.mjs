// End-to-end tests of the library page in two real headless browsers: Debian's chromium through
// playwright-core, Debian's firefox-esr through puppeteer-core over WebDriver BiDi. The test starts the
// mediagate binary itself (MEDIAGATE_BIN) on a free port with a temporary media directory, catalog and
// admin token, and writes screenshots to MEDIAGATE_E2E_OUT (default: the current directory).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

const BIN = process.env.MEDIAGATE_BIN;
const OUT = path.resolve(process.env.MEDIAGATE_E2E_OUT || '.');
const FFMPEG = process.env.FFMPEG || '/usr/bin/ffmpeg';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const TOKEN = 'e2e-' + Math.random().toString(36).slice(2);
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];

// The clips every browser must play and seek (DESIGN.md "Test media").
const AV = ['-f', 'lavfi', '-i', 'testsrc2=duration=10:size=640x360:rate=30', '-f', 'lavfi', '-i',
  'sine=frequency=440:duration=10', '-shortest'];
const H264 = ['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '30', '-c:a', 'aac'];
const CLIPS = {
  'mp4-faststart.mp4': [...AV, ...H264, '-movflags', '+faststart'],
  'mp4-moov-at-end.mp4': [...AV, ...H264],
  'webm-vp9-opus.webm': [...AV, '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '500k',
    '-g', '30', '-c:a', 'libopus'],
};
const EXTRA = {
  'still.jpg': ['-f', 'lavfi', '-i', 'testsrc2=size=640x360', '-frames:v', '1'],
  'tone.ogg': ['-f', 'lavfi', '-i', 'sine=frequency=660:duration=4', '-c:a', 'libopus'],
};
// A clip large enough that no browser holds it whole before the seek: 40 s at a constant 6 Mbit/s (x264's CBR
// filler) is 30 MB, while browsers read about 10 s ahead. Seeking to 32 s needs bytes about 24 MB in, so a new
// Range request, which must be answered 206 from that offset.
const SEEK_CLIP = 'seek-cbr.mp4';
const SEEK_ARGS = ['-f', 'lavfi', '-i', 'testsrc2=duration=40:size=640x360:rate=25', '-c:v', 'libx264', '-preset',
  'ultrafast', '-pix_fmt', 'yuv420p', '-g', '25', '-b:v', '6M', '-minrate', '6M', '-maxrate', '6M', '-bufsize', '1M',
  '-x264-params', 'nal-hrd=cbr:force-cfr=1', '-movflags', '+faststart'];
const SEEK_TO = 32;
const UPLOAD = ['-f', 'lavfi', '-i', 'testsrc=duration=3:size=320x240:rate=25', '-c:v', 'libvpx-vp9', '-deadline',
  'realtime', '-cpu-used', '8', '-b:v', '200k'];

let tmp;
let server;
let base;
let proxy;  // the recording proxy in front of the server: what each browser sent and received
const ids = {};  // clip key -> item id
const results = [];  // one line per browser and clip, printed at the end

function ffmpeg(args, out) {
  execFileSync(FFMPEG, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args, out], { stdio: 'inherit' });
}

// Forwards every request to the server and records, per response, the Range sent, the status, Content-Range,
// Content-Length and the body bytes the server sent through it (fewer than Content-Length when the browser hung up).
function startRecordingProxy(port) {
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
  })));
}

function startServer(media, catalog) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--storage', media, '--catalog', `sqlite:${catalog}`,
      '--admin-token', TOKEN, '--scan-on-start', '--access-log', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

async function api(pathname) {
  const r = await fetch(base + pathname);
  return r.json();
}

async function waitFor(what, fn, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

before(async () => {
  assert.ok(BIN, 'set MEDIAGATE_BIN to the mediagate binary');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-e2e-'));
  const media = path.join(tmp, 'media');
  fs.mkdirSync(media);
  for (const [name, args] of Object.entries({ ...CLIPS, ...EXTRA, [SEEK_CLIP]: SEEK_ARGS })) {
    ffmpeg(args, path.join(media, name));
  }
  ffmpeg(UPLOAD, path.join(tmp, 'upload-me.webm'));
  server = await startServer(media, path.join(tmp, 'catalog.db'));
  proxy = await startRecordingProxy(server.port);
  base = proxy.base;
  const all = Object.keys(CLIPS).length + Object.keys(EXTRA).length + 1;
  const items = await waitFor('the scan and probes', async () => {
    const list = await api('/api/media?per_page=100');
    return list.items.length === all && list.items.every((i) => i.probed) ? list.items : null;
  });
  for (const item of items) ids[item.key] = item.id;
});

after(() => {
  if (proxy) { proxy.srv.close(); proxy.agent.destroy(); }
  if (server) server.proc.kill('SIGTERM');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  console.log('\ne2e results:\n' + results.map((r) => '  ' + r).join('\n'));
});

// Everything a test does with a page, for both automation libraries.
function adapter(kind, page) {
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
async function playAndSeek(target) {
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
  const seeked = new Promise((resolve) => v.addEventListener('seeked', resolve, { once: true }));
  v.currentTime = target;
  await Promise.race([seeked, new Promise((_, reject) => setTimeout(() => reject(new Error('no seeked event')), 15000))]);
  const afterSeek = v.currentTime;
  await until(() => v.currentTime > afterSeek + 0.5, 15000, 'playback to go on after the seek');
  return { beforeSeek, afterSeek, later: v.currentTime, paused: v.paused, duration: v.duration,
    error: v.error ? v.error.code : null, errors, readyState: v.readyState };
}

function browserSuite(name, kind, launch) {
  describe(name, () => {
    let browser;
    let page;
    let p;
    before(async () => {
      ({ browser, page } = await launch());
      p = adapter(kind, page);
      await p.viewport(1280, 860);
    });
    after(async () => { if (browser) await browser.close(); });

    test('library grid shows every item with posters, durations and sizes', async () => {
      await p.goto(base + '/');
      await p.waitFor(() => document.body.dataset.libraryLoaded === 'true'
        && document.querySelectorAll('#grid .card').length >= 5);
      const cards = await p.evaluate(() => [...document.querySelectorAll('#grid .card')].map((c) => ({
        id: c.dataset.id, kind: c.dataset.kind, title: c.querySelector('.card-title').textContent,
        duration: c.querySelector('.duration') ? c.querySelector('.duration').textContent : null,
        meta: c.querySelector('.card-meta').textContent, img: c.querySelector('img') ? c.querySelector('img').getAttribute('src') : null,
      })));
      for (const key of Object.keys(CLIPS)) {
        const card = cards.find((c) => c.id === ids[key]);
        assert.ok(card, `no card for ${key}`);
        assert.equal(card.kind, 'video');
        assert.equal(card.duration, '0:10', `${key} duration`);
        assert.match(card.img, /\/v\/[A-Za-z0-9]+\/poster$/, `${key} has no poster`);
        assert.match(card.meta, /KB|MB/);
      }
      // Every poster and image thumbnail actually decoded.
      await p.waitFor(() => [...document.querySelectorAll('#grid img')].every((i) => i.complete && i.naturalWidth > 0));
      const file = path.join(OUT, `library-${name.split(' ')[0]}.png`);
      await p.screenshot(file);
      console.log(`screenshot of the library page (${name}): ${file}`);
    });

    for (const key of Object.keys(CLIPS)) {
      test(`plays and seeks ${key}`, async () => {
        // Open the item as a person does: the library page first, then the item's address.
        await p.goto(base + '/');
        await p.waitFor(() => document.body.dataset.libraryLoaded === 'true');
        await p.evaluate((id) => { location.hash = '#/item/' + id; }, ids[key]);
        await p.waitFor((id) => {
          const v = document.querySelector('#player-media');
          return v && v.getAttribute('src') === `/v/${id}`;
        }, ids[key]);
        let r;
        try {
          r = await p.evaluate(playAndSeek, 6);
        } catch (e) {
          results.push(`${name}: ${key}: FAILED (${e.message.split('\n')[0]})`);
          throw e;
        }
        results.push(`${name}: ${key}: played to ${r.beforeSeek.toFixed(2)} s, seeked to ${r.afterSeek.toFixed(2)} s, ` +
          `then ${r.later.toFixed(2)} s; duration ${r.duration.toFixed(2)} s; media errors: ${r.errors.length}`);
        assert.ok(r.afterSeek >= 5.5 && r.afterSeek <= 6.6, `seek landed at ${r.afterSeek}`);
        assert.ok(r.later > r.afterSeek + 0.5, 'playback went on after the seek');
        assert.equal(r.paused, false);
        assert.equal(r.error, null);
        assert.deepEqual(r.errors, []);
        assert.ok(Math.abs(r.duration - 10) < 0.2, `duration ${r.duration}`);
        const shownError = await p.evaluate(() => !document.querySelector('#player-error').hidden);
        assert.equal(shownError, false, 'the page shows a playback error');
        if (kind === 'playwright' && key === Object.keys(CLIPS)[0]) {
          const file = path.join(OUT, 'player-chromium.png');
          await p.screenshot(file);
          console.log(`screenshot of the player page: ${file}`);
        }
      });
    }

    test(`a seek in ${SEEK_CLIP} is a new Range request answered 206 from the right offset`, async () => {
      const size = fs.statSync(path.join(tmp, 'media', SEEK_CLIP)).size;
      const target = `/v/${ids[SEEK_CLIP]}`;
      await p.goto(base + '/');
      await p.waitFor(() => document.body.dataset.libraryLoaded === 'true');
      const start = proxy.log.length;
      await p.evaluate((id) => { location.hash = '#/item/' + id; }, ids[SEEK_CLIP]);
      await p.waitFor((t) => {
        const v = document.querySelector('#player-media');
        return v && v.getAttribute('src') === t;
      }, target);
      const r = await p.evaluate(playAndSeek, SEEK_TO);
      const seen = proxy.log.slice(start).filter((e) => e.url === target && e.method === 'GET');
      const lines = seen.map((e) => `Range ${e.range} -> ${e.status} ${e.contentRange || ''} ` +
        `Content-Length ${e.contentLength}, ${e.bytes} bytes${e.done ? '' : ' (browser hung up)'}`);
      results.push(`${name}: ${SEEK_CLIP} (${size} bytes), seek to ${SEEK_TO} s landed at ${r.afterSeek.toFixed(2)} s; ` +
        `responses:\n    ${lines.join('\n    ')}`);
      assert.ok(r.afterSeek >= SEEK_TO - 0.5 && r.afterSeek <= SEEK_TO + 1.1, `seek landed at ${r.afterSeek}`);
      assert.ok(seen.length >= 2, `expected a request after the seek:\n${lines.join('\n')}`);
      for (const e of seen) {
        // Every media response is an exact 206 for the range asked (browsers always send Range for media).
        assert.ok(e.range, `a request without Range:\n${lines.join('\n')}`);
        const m = /^bytes=(\d+)-(\d*)$/.exec(e.range);
        assert.ok(m, `unexpected Range ${e.range}`);
        const first = Number(m[1]);
        const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
        assert.equal(e.status, 206, lines.join('\n'));
        assert.equal(e.contentRange, `bytes ${first}-${last}/${size}`, lines.join('\n'));
        assert.equal(e.contentLength, last - first + 1, lines.join('\n'));
        assert.ok(e.bytes <= e.contentLength, lines.join('\n'));
        if (e.done) assert.equal(e.bytes, e.contentLength, `a response that ended short:\n${lines.join('\n')}`);
      }
      // The first read did not fetch the whole clip, and the seek asked for bytes far into it: the position of
      // 32 s in a constant-bitrate clip is about 32/40 of the file.
      assert.ok(seen[0].bytes < size, `the browser read all ${size} bytes before seeking: the seek proves nothing`);
      const far = seen.slice(1).filter((e) => Number(/^bytes=(\d+)/.exec(e.range)[1]) > size * 0.5);
      assert.ok(far.length >= 1, `no Range request past the middle of the file after the seek:\n${lines.join('\n')}`);
      assert.ok(far.some((e) => e.bytes > 0), 'the seek request got no bytes');
    });

    test('uploads a file through the form and shows it in the grid', async () => {
      const title = `Uploaded in ${name.split(' ')[0]} ${Date.now()}`;
      await p.goto(base + '/');
      await p.waitFor(() => document.body.dataset.libraryLoaded === 'true');
      await p.click('#open-upload');
      await p.waitFor(() => document.querySelector('#upload-dialog').open);
      await p.setFile('#upload-file', path.join(tmp, 'upload-me.webm'));
      await p.type('#upload-title', title);
      await p.type('#upload-token', TOKEN);
      await p.click('#upload-submit');
      await p.waitFor((t) => [...document.querySelectorAll('#grid .card-title')].some((e) => e.textContent === t),
        title, 60000);
      const progress = await p.evaluate(() => document.querySelector('#upload-progress').value);
      assert.equal(progress, 100, 'the progress bar reached 100%');
      const list = await api('/api/media?q=' + encodeURIComponent(title));
      assert.equal(list.total, 1);
      assert.equal(list.items[0].size, fs.statSync(path.join(tmp, 'upload-me.webm')).size);
      results.push(`${name}: upload through the form: ok (${list.items[0].key})`);
    });

    test('works with the keyboard and on a phone-sized screen', async () => {
      await p.viewport(390, 844);
      await p.goto(base + '/');
      await p.waitFor(() => document.body.dataset.libraryLoaded === 'true'
        && document.querySelectorAll('#grid .card').length > 0);
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px on a phone`);
      await p.focus('#grid .card');
      await p.press('Enter');
      await p.waitFor(() => /^#\/item\//.test(location.hash) && document.querySelector('#player-media'));
      await p.press('Escape');
      await p.waitFor(() => !document.querySelector('#library-view').hidden);
      await p.press('/');
      assert.equal(await p.evaluate(() => document.activeElement.id), 'q', '"/" focuses the search field');
      if (kind === 'playwright') {
        const file = path.join(OUT, `library-phone-${name.split(' ')[0]}.png`);
        await p.screenshot(file);
        console.log(`screenshot of the library page on a phone-sized screen: ${file}`);
      }
      await p.viewport(1280, 860);
    });
  });
}

browserSuite('chromium (playwright-core)', 'playwright', async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const context = await browser.newContext();
  const page = await context.newPage();
  return { browser, page };
});

browserSuite('firefox-esr (puppeteer-core, WebDriver BiDi)', 'puppeteer', async () => {
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
});
