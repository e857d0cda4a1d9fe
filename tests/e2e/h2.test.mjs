// HTTP/2 in real browsers (issue 13): Debian's chromium (playwright-core) and firefox-esr (puppeteer-core) load the
// library page over https://127.0.0.1:PORT, play the seek clip and seek in it, and every response they got came
// over h2: the Resource Timing entries' nextHopProtocol in both browsers, every response's protocol as the DevTools
// protocol reports it in chromium (media included), and the server's own counters (mediagate_h2_streams_total
// against every request answered). The certificate is self-signed for 127.0.0.1: the browsers are told to accept
// it (playwright's ignoreHTTPSErrors, puppeteer's acceptInsecureCerts); the TLS handshake itself is the same.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import { BIN, CHROMIUM, CHROMIUM_ARGS, FIREFOX, SEEK_ARGS, SEEK_CLIP, SEEK_TO, ffmpeg, playAndSeek, waitForItems }
  from './helpers.mjs';

let tmp;
let server;
let plainBase;  // http:// beside the HTTPS listener: the test's own API and metrics calls
let secureBase;
let ids = {};
const results = [];

// `mediagate serve` with an HTTPS listener beside the plain one; resolves with both ports once both are printed.
function startServer(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--listen-tls', '127.0.0.1:0', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => reject(new Error('mediagate did not start within 20 s:\n' + log)), 20000);
    const check = () => {
      const plain = log.match(/mediagate listening on http:\/\/127\.0\.0\.1:(\d+)\//);
      const secure = log.match(/mediagate listening on https:\/\/127\.0\.0\.1:(\d+)\//);
      if (plain && secure) {
        clearTimeout(timer);
        resolve({ proc, plain: Number(plain[1]), secure: Number(secure[1]) });
      }
    };
    proc.stdout.on('data', (d) => { log += d; check(); });
    proc.stderr.on('data', (d) => { log += d; });
    proc.on('exit', (code) => reject(new Error(`mediagate exited with ${code}:\n${log}`)));
  });
}

// Requests answered in all, and HTTP/2 streams, from the server's /metrics.
async function counters() {
  const text = await (await fetch(plainBase + '/metrics')).text();
  let requests = 0;
  for (const m of text.matchAll(/^mediagate_http_requests_total\{status="\d+"\} (\d+)$/gm)) requests += Number(m[1]);
  const h2 = Number((text.match(/^mediagate_h2_streams_total (\d+)$/m) || [0, NaN])[1]);
  return { requests, h2 };
}

async function launchChromium() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  // Every response's protocol as chromium's network stack saw it (media requests included).
  const protocols = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', (e) => protocols.push({ url: e.response.url, protocol: e.response.protocol }));
  return {
    browser, protocols,
    goto: (url) => page.goto(url, { waitUntil: 'load' }),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitFor: (fn, arg) => page.waitForFunction(fn, arg, { timeout: 30000 }),
  };
}

async function launchFirefox() {
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: FIREFOX, headless: true, acceptInsecureCerts: true,
    extraPrefsFirefox: {
      'media.autoplay.default': 0, 'media.autoplay.blocking_policy': 0, 'media.cache_readahead_limit': 8,
      'media.cache_resume_threshold': 4, 'app.update.enabled': false, 'network.captive-portal-service.enabled': false,
    },
  });
  const page = await browser.newPage();
  return {
    browser, protocols: null,
    goto: (url) => page.goto(url, { waitUntil: 'load' }),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitFor: (fn, arg) => page.waitForFunction(fn, { timeout: 30000, polling: 100 }, arg),
  };
}

before(async () => {
  assert.ok(BIN, 'set MEDIAGATE_BIN to the mediagate binary');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-e2e-h2-'));
  const media = path.join(tmp, 'media');
  fs.mkdirSync(media);
  ffmpeg(SEEK_ARGS, path.join(media, SEEK_CLIP));
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=640x360', '-frames:v', '1'], path.join(media, 'still.jpg'));
  const key = path.join(tmp, 'key.pem');
  const cert = path.join(tmp, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
  { stdio: 'ignore' });
  server = await startServer(['--storage', media, '--catalog', `sqlite:${path.join(tmp, 'catalog.db')}`,
    '--scan-on-start', '--access-log', 'off', '--tls-cert', cert, '--tls-key', key]);
  plainBase = `http://127.0.0.1:${server.plain}`;
  secureBase = `https://127.0.0.1:${server.secure}`;
  ids = await waitForItems(plainBase, 2);
});

after(() => {
  if (server) server.proc.kill('SIGTERM');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  console.log('\ne2e h2 results:\n' + results.map((r) => '  ' + r).join('\n'));
});

for (const [name, launch] of [['chromium', launchChromium], ['firefox-esr', launchFirefox]]) {
  describe(`${name} over HTTP/2`, () => {
    let b;
    before(async () => { b = await launch(); });
    after(async () => { if (b) await b.browser.close(); });

    test('the page, its posters and a seek in the video all come over h2', async () => {
      const start = await counters();
      const id = ids[SEEK_CLIP];
      await b.goto(secureBase + '/');
      await b.waitFor(() => document.body.dataset.libraryLoaded === 'true'
        && [...document.querySelectorAll('#grid img')].length > 0
        && [...document.querySelectorAll('#grid img')].every((i) => i.complete && i.naturalWidth > 0));
      // The progressive path (ranges of the file over h2); MP4 would play with HLS by default.
      await b.evaluate(() => localStorage.setItem('mediagate.stream', 'progressive'));
      await b.evaluate((i) => { location.hash = '#/item/' + i; }, id);
      await b.waitFor((t) => {
        const v = document.querySelector('#player-media');
        return v && v.getAttribute('src') === t;
      }, `/v/${id}`);
      const r = await b.evaluate(playAndSeek, SEEK_TO);
      assert.ok(r.afterSeek >= SEEK_TO - 0.5 && r.afterSeek <= SEEK_TO + 0.6, `seek landed at ${r.afterSeek}`);
      assert.ok(r.later > r.afterSeek + 0.5, 'playback went on after the seek');
      assert.deepEqual(r.errors, []);

      const entries = await b.evaluate(() => [...performance.getEntriesByType('navigation'),
        ...performance.getEntriesByType('resource')].map((e) => ({ url: e.name, protocol: e.nextHopProtocol })));
      const end = await counters();
      const line = `${name}: seek to ${r.afterSeek.toFixed(2)} s; ${entries.length} resource timing entries ` +
        `(${[...new Set(entries.map((e) => e.protocol))].join(',')}); server: ${end.requests - start.requests} ` +
        `requests answered, ${end.h2 - start.h2} h2 streams` + (b.protocols
        ? `; DevTools: ${b.protocols.length} responses (${[...new Set(b.protocols.map((e) => e.protocol))].join(',')}; ` +
          'data: URLs aside), ' +
          `${b.protocols.filter((e) => e.url.includes(`/v/${id}`)).length} of the video` : '');
      results.push(line);
      assert.ok(entries.length >= 3, `too few resource timing entries: ${JSON.stringify(entries)}`);
      for (const e of entries) assert.equal(e.protocol, 'h2', `${e.url} came over ${e.protocol}`);
      if (b.protocols) {
        const video = b.protocols.filter((e) => e.url.includes(`/v/${id}`));
        assert.ok(video.length >= 2, `the video's responses: ${JSON.stringify(video)}`);
        for (const e of b.protocols.filter((x) => x.url.startsWith(secureBase)))
          assert.equal(e.protocol, 'h2', `${e.url} came over ${e.protocol}`);
      }
      // Every request the server answered in the meantime (but the first /metrics call of this test, over
      // HTTP/1.1) was an h2 stream; streams still open are counted as streams, not yet as answered requests.
      assert.ok(end.h2 - start.h2 >= 3, line);
      assert.ok(end.requests - start.requests - 1 <= end.h2 - start.h2, line);
    });
  });
}
