// End-to-end tests of the library page in two real headless browsers: Debian's chromium through
// playwright-core, Debian's firefox-esr through puppeteer-core over WebDriver BiDi. The test starts the
// mediagate binary itself (MEDIAGATE_BIN) on a free port with a temporary media directory, catalog and
// admin token, and writes screenshots to MEDIAGATE_E2E_OUT (default: the current directory). What the browser tests
// share (browsers, server, recording proxy, the network-checked seek) is in helpers.mjs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, BROWSERS, SEEK_ARGS, SEEK_CLIP, adapter, checkSeekOverNetwork, ffmpeg, playAndSeek, startRecordingProxy,
  startServer, waitForItems } from './helpers.mjs';

const OUT = path.resolve(process.env.MEDIAGATE_E2E_OUT || '.');
const TOKEN = 'e2e-' + Math.random().toString(36).slice(2);

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
const UPLOAD = ['-f', 'lavfi', '-i', 'testsrc=duration=3:size=320x240:rate=25', '-c:v', 'libvpx-vp9', '-deadline',
  'realtime', '-cpu-used', '8', '-b:v', '200k'];

let tmp;
let server;
let base;
let proxy;  // the recording proxy in front of the server: what each browser sent and received
const ids = {};  // clip key -> item id
const results = [];  // one line per browser and clip, printed at the end

async function api(pathname) {
  const r = await fetch(base + pathname);
  return r.json();
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
  server = await startServer(['--storage', media, '--catalog', `sqlite:${path.join(tmp, 'catalog.db')}`,
    '--admin-token', TOKEN, '--scan-on-start', '--access-log', 'off']);
  proxy = await startRecordingProxy(server.port);
  base = proxy.base;
  Object.assign(ids, await waitForItems(base, Object.keys(CLIPS).length + Object.keys(EXTRA).length + 1));
});

after(() => {
  if (proxy) proxy.close();
  if (server) server.proc.kill('SIGTERM');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  console.log('\ne2e results:\n' + results.map((r) => '  ' + r).join('\n'));
});

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
        // MP4 plays with HLS by default (issue 14), the rest progressively (the file itself at /v/{id}); the
        // progressive path of MP4 is checkSeekOverNetwork's, below.
        await p.waitFor((id) => {
          const v = document.querySelector('#player-media');
          return v && (v.getAttribute('src') === `/v/${id}` || v.dataset.stream === 'hls.js');
        }, ids[key]);
        const stream = await p.evaluate(() => document.querySelector('#player-media').dataset.stream);
        assert.equal(stream, key.endsWith('.mp4') ? 'hls.js' : 'progressive');
        let r;
        try {
          r = await p.evaluate(playAndSeek, 6);
        } catch (e) {
          results.push(`${name}: ${key}: FAILED (${e.message.split('\n')[0]})`);
          throw e;
        }
        results.push(`${name}: ${key} (${stream}): played to ${r.beforeSeek.toFixed(2)} s, seeked to ${r.afterSeek.toFixed(2)} s, ` +
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

    test('the seek strip shows thumbnails from /v/{id}/thumbs.vtt and a click on it seeks', async () => {
      const key = Object.keys(CLIPS)[0];
      await p.goto(base + '/');
      await p.waitFor(() => document.body.dataset.libraryLoaded === 'true');
      await p.evaluate((id) => { location.hash = '#/item/' + id; }, ids[key]);
      await p.waitFor(() => document.querySelector('#scrub') && document.querySelector('#player-media').readyState >= 1);
      const r = await p.evaluate(async () => {
        const strip = document.querySelector('#scrub');
        const media = document.querySelector('#player-media');
        const box = strip.getBoundingClientRect();
        const at = (f) => ({ clientX: box.left + box.width * f, clientY: box.top + box.height / 2, bubbles: true });
        strip.dispatchEvent(new MouseEvent('mousemove', at(0.75)));
        const preview = strip.querySelector('.scrub-preview');
        const url = getComputedStyle(preview).backgroundImage.replace(/^url\("?|"?\)$/g, '');
        const img = new Image();
        img.src = url;
        await img.decode();
        const shown = { hidden: preview.hidden, url, pos: preview.style.backgroundPosition, cue: preview.dataset.cue,
                        label: preview.textContent, w: img.naturalWidth, h: img.naturalHeight };
        strip.dispatchEvent(new MouseEvent('click', at(0.5)));
        await new Promise((resolve) => setTimeout(resolve, 300));
        return { ...shown, time: media.currentTime, duration: media.duration };
      });
      results.push(`${name}: seek strip: tile ${r.cue} at ${r.pos} of ${r.w}x${r.h}, click seeked to ${r.time.toFixed(2)} s`);
      assert.equal(r.hidden, false);
      assert.match(r.url, /\/v\/[A-Za-z0-9]+\/thumbs-0\.jpg$/);
      assert.equal(r.cue, '3');  // 7.5 s of 10: the tile of 6-8 s
      assert.equal(r.pos, '-480px 0px');
      assert.equal(r.label, '0:07');
      assert.deepEqual([r.w, r.h], [800, 90]);
      assert.ok(Math.abs(r.time - r.duration / 2) < 0.6, `the click seeked to ${r.time}`);
    });

    test(`a seek in ${SEEK_CLIP} is a new Range request answered 206 from the right offset`, async () => {
      const size = fs.statSync(path.join(tmp, 'media', SEEK_CLIP)).size;
      await checkSeekOverNetwork(p, { base, proxy, id: ids[SEEK_CLIP], size }, (summary) => {
        results.push(`${name}: ${summary}`);
      });
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

for (const { name, kind, launch } of BROWSERS) browserSuite(name, kind, launch);
