// The library page's private media controls (issue 12), in Debian's chromium through playwright-core: the admin
// signs in on the page, marks an item private (an anonymous page load no longer lists it), copies a private link
// (from the clipboard, and from the read-only field when there is no clipboard) that plays in a fresh browser
// while the same URL without its query is refused, and plays the private item on the admin's own page through a
// freshly minted link. The test starts mediagate (MEDIAGATE_BIN) with --admin-token and --signing-keys (a 0600
// key file). Run by tests/e2e/run.sh with the other *.test.mjs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, waitFor } from './helpers.mjs';

const BIN = process.env.MEDIAGATE_BIN;
const OUT = path.resolve(process.env.MEDIAGATE_E2E_OUT || '.');
const FFMPEG = process.env.FFMPEG || '/usr/bin/ffmpeg';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];
const TOKEN = 'e2e-' + crypto.randomBytes(12).toString('hex');
const CLIP_ARGS = ['-f', 'lavfi', '-i', 'testsrc2=duration=4:size=320x180:rate=25', '-f', 'lavfi', '-i',
  'sine=frequency=440:duration=4', '-shortest', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
  '-g', '25', '-c:a', 'aac', '-movflags', '+faststart'];
const SECRET = 'clip-secret.mp4';
const OPEN = 'clip-open.mp4';

let tmp;
let server;
let base;
let browser;
const ids = {};
const cspErrors = [];

async function listIds(auth) {
  const r = await fetch(base + '/api/media?per_page=100', { headers: auth ? { Authorization: 'Bearer ' + TOKEN } : {} });
  assert.equal(r.status, 200);
  return (await r.json()).items.map((i) => i.id);
}

// A page in its own browser context; `admin` signs in through the header button (the prompt answered with the
// token); `clipboard` grants clipboard access, otherwise the page has no navigator.clipboard at all.
async function openPage({ admin = false, clipboard = true } = {}) {
  const context = await browser.newContext();
  if (clipboard) await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  else await context.addInitScript(() => { Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined }); });
  const page = await context.newPage();
  page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) cspErrors.push(m.text()); });
  page.on('dialog', (d) => d.accept(TOKEN));
  await page.goto(base + '/', { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.libraryLoaded === 'true');
  if (admin) {
    await page.click('#admin-toggle');
    await page.waitForFunction(() => !document.querySelector('#admin-bar').hidden
      && document.querySelector('#grid .card-admin select.visibility'));
  }
  return { context, page };
}

before(async () => {
  assert.ok(BIN, 'set MEDIAGATE_BIN to the mediagate binary');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-e2e-private-ui-'));
  const media = path.join(tmp, 'media');
  fs.mkdirSync(media);
  for (const name of [SECRET, OPEN]) {
    execFileSync(FFMPEG, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...CLIP_ARGS, path.join(media, name)],
      { stdio: 'inherit' });
  }
  const keys = path.join(tmp, 'signing.keys');
  fs.writeFileSync(keys, `k1 ${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  fs.chmodSync(keys, 0o600);
  server = await startServer(['--storage', media, '--catalog', `sqlite:${path.join(tmp, 'catalog.db')}`,
    '--scan-on-start', '--admin-token', TOKEN, '--signing-keys', keys, '--access-log', 'off']);
  base = `http://127.0.0.1:${server.port}`;
  const items = await waitFor('the scan and probes', async () => {
    const r = await fetch(base + '/api/media?per_page=100');
    const list = await r.json();
    return list.items.length === 2 && list.items.every((i) => i.probed) ? list.items : null;
  });
  for (const item of items) ids[item.key] = item.id;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.proc.kill('SIGTERM');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// In a page showing a video: plays it muted and reports once a frame is there and time has moved.
async function playVideo(selector) {
  const v = document.querySelector(selector);
  v.muted = true;
  await v.play();
  const started = performance.now();
  while (!(v.readyState >= 2 && v.currentTime > 0.3)) {
    if (v.error) throw new Error('media error ' + v.error.code);
    if (performance.now() - started > 15000) throw new Error(`timed out: readyState ${v.readyState}, currentTime ${v.currentTime}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { readyState: v.readyState, currentTime: v.currentTime, src: v.getAttribute('src') };
}

describe('private media on the library page (chromium)', () => {
  test('the admin marks an item private: an anonymous page no longer lists it', async () => {
    const { context, page } = await openPage({ admin: true });
    const id = ids[SECRET];
    const item = `#grid li[data-id="${id}"]`;
    assert.equal(await page.$eval(`${item} select.visibility`, (s) => s.value), 'inherit');
    assert.match(await page.$eval(`${item} select.visibility`, (s) => s.getAttribute('aria-label')), /^Visibility of \S/);
    await page.waitForFunction((sel) => document.querySelector(sel).dataset.needsLink === 'false', item);
    assert.equal(await page.$eval(`${item} .copy-link`, (b) => b.hidden), true, 'a public item shows no link button');
    // With the keyboard: focus the select and choose "Private".
    await page.focus(`${item} select.visibility`);
    await page.selectOption(`${item} select.visibility`, 'private');
    await page.waitForFunction((sel) => {
      const li = document.querySelector(sel);
      return li && li.dataset.visibility === 'private' && li.dataset.needsLink === 'true'
        && !li.querySelector('.copy-link').hidden;
    }, item);
    const label = await page.$eval(`${item} .copy-link`, (b) => b.textContent);
    assert.equal(label, 'Copy private link (expires in 1 hour)');
    assert.equal(await page.evaluate(() => document.activeElement.classList.contains('visibility')), true,
      'focus stays on the visibility control');
    const shot = path.join(OUT, 'private-admin-library.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot of the admin's library: ${shot}`);
    await context.close();

    assert.deepEqual(await listIds(false), [ids[OPEN]]);
    assert.ok((await listIds(true)).includes(id), 'the admin still lists it');
    const anon = await openPage();
    await anon.page.waitForFunction(() => document.querySelectorAll('#grid .card').length === 1);
    const shown = await anon.page.$$eval('#grid .card', (cards) => cards.map((c) => c.dataset.id));
    assert.deepEqual(shown, [ids[OPEN]]);
    assert.equal(await anon.page.$('.card-admin'), null, 'no admin controls without the token');
    assert.equal(await anon.page.$eval('#admin-bar', (b) => b.hidden), true);
    await anon.context.close();
  });

  test('the admin copies a private link: it plays, and without its query it is refused', async () => {
    const { context, page } = await openPage({ admin: true });
    const id = ids[SECRET];
    const item = `#grid li[data-id="${id}"]`;
    await page.waitForFunction((sel) => !document.querySelector(sel + ' .copy-link').hidden, item);
    await page.selectOption('#link-ttl', '86400');
    assert.equal(await page.$eval(`${item} .copy-link`, (b) => b.textContent), 'Copy private link (expires in 1 day)');
    const before = Math.floor(Date.now() / 1000);
    await page.click(`${item} .copy-link`);
    await page.waitForFunction((sel) => /expires/.test(document.querySelector(sel + ' .link-status').textContent), item);
    const url = await page.evaluate(() => navigator.clipboard.readText());
    const status = await page.$eval(`${item} .link-status`, (s) => ({ text: s.textContent,
      datetime: s.querySelector('time').getAttribute('datetime'), shown: s.querySelector('time').textContent }));
    assert.match(url, new RegExp(`^${base}/v/${id}\\?exp=\\d+&kid=k1&sig=[A-Za-z0-9_-]+$`));
    const exp = Number(new URL(url).searchParams.get('exp'));
    assert.ok(exp >= before + 86400 - 5 && exp <= before + 86400 + 60, `expiry ${exp - before} s from now`);
    assert.equal(new Date(status.datetime).getTime() / 1000, exp);
    const locale = await page.evaluate((iso) => new Date(iso).toLocaleString(undefined,
      { dateStyle: 'medium', timeStyle: 'short' }), status.datetime);
    assert.equal(status.shown, locale, 'the expiry is shown in the locale');
    assert.match(status.text, /^Private link copied; it expires /);
    await context.close();

    // The link in a fresh browser context (no token): chromium's media document plays it.
    const viewer = await browser.newContext();
    const vp = await viewer.newPage();
    await vp.goto(url);
    const r = await vp.evaluate(playVideo, 'video');
    assert.ok(r.readyState >= 2, `readyState ${r.readyState}`);
    await viewer.close();
    const bare = await fetch(url.split('?')[0]);
    assert.equal(bare.status, 403);
    assert.match(await bare.text(), /signed link/);
    const wrongSig = await fetch(url.replace(/sig=./, (m) => (m.endsWith('A') ? 'sig=B' : 'sig=A')));
    assert.equal(wrongSig.status, 403);
  });

  test('without a clipboard the link is shown selected in a read-only field', async () => {
    const { context, page } = await openPage({ admin: true, clipboard: false });
    const item = `#grid li[data-id="${ids[SECRET]}"]`;
    await page.waitForFunction((sel) => !document.querySelector(sel + ' .copy-link').hidden, item);
    await page.focus(`${item} .copy-link`);
    await page.keyboard.press('Enter');
    await page.waitForFunction((sel) => !document.querySelector(sel + ' .link-url').hidden, item);
    const field = await page.$eval(`${item} .link-url`, (i) => ({ value: i.value, readOnly: i.readOnly,
      focused: document.activeElement === i, selected: i.selectionStart === 0 && i.selectionEnd === i.value.length }));
    assert.match(field.value, new RegExp(`^${base}/v/${ids[SECRET]}\\?exp=`));
    assert.deepEqual([field.readOnly, field.focused, field.selected], [true, true, true]);
    assert.match(await page.$eval(`${item} .link-status`, (s) => s.textContent), /^Copy this private link; it expires /);
    const r = await fetch(field.value, { headers: { Range: 'bytes=0-99' } });
    assert.equal(r.status, 206);
    await context.close();
  });

  test("the admin's own page plays the private item through a fresh link", async () => {
    const { context, page } = await openPage({ admin: true });
    const id = ids[SECRET];
    await page.click(`#grid a.card[data-id="${id}"]`);
    await page.waitForFunction(() => document.querySelector('#player-media'));
    const src = await page.$eval('#player-media', (v) => v.getAttribute('src'));
    assert.match(src, new RegExp(`^/v/${id}\\?exp=\\d+&kid=k1&sig=`));
    const r = await page.evaluate(playVideo, '#player-media');
    assert.ok(r.readyState >= 2 && r.currentTime > 0.3, JSON.stringify(r));
    assert.equal(await page.$eval('#player-error', (e) => e.hidden), true);
    assert.equal(await page.$eval('#item-visibility', (s) => s.value), 'private');
    assert.equal(await page.$eval('#item-copy-link', (b) => b.hidden), false);
    assert.match(await page.$eval('#download', (a) => a.getAttribute('href')), /\?exp=/);
    const shot = path.join(OUT, 'private-admin-player.png');
    await page.screenshot({ path: shot, fullPage: true });
    // Back to public from the player: the page plays /v/{id} without a link again (an MP4: with HLS by default).
    await page.selectOption('#item-visibility', 'public');
    await page.waitForFunction((i) => {
      const v = document.querySelector('#player-media');
      return v && (v.getAttribute('src') === `/v/${i}` || v.dataset.stream === 'hls.js') &&
        document.querySelector('#item-copy-link').hidden;
    }, id);
    await page.evaluate(playVideo, '#player-media');
    assert.ok((await listIds(false)).includes(id), 'public again: listed to everyone');
    await context.close();
    assert.deepEqual(cspErrors, [], 'the page broke its Content-Security-Policy');
  });
});
