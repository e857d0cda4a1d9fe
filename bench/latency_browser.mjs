// The viewer's side of bench/latency.py: headless chromium (playwright-core, as tests/e2e) plays each URL in
// a fresh browser context (its own HTTP and media cache) on an already loaded page, and reports the time
// from `src` being set to the first painted frame (requestVideoFrameCallback), then from each
// `currentTime =` (paused) to the first painted frame at that time. Wall-clock timestamps (ms since the
// epoch) of every action let bench/latency.py attribute the S3 requests of the shaped S3's log to them.
//
//   node latency_browser.mjs SPEC.json  -> one JSON line per session on stdout
//   SPEC: {"chromium": "/usr/bin/chromium", "timeout_ms": 60000,
//          "sessions": [{"label": "...", "url": "http://...", "seeks": [12.5, ...]}]}
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const browser = await chromium.launch({
  executablePath: spec.chromium || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
try {
  for (const session of spec.sessions) {
    const context = await browser.newContext();
    const page = await context.newPage();
    // --trace: every media request the page makes (its Range, when its answer began, how it ended).
    const requests = [];
    if (spec.trace) {
      const seen = new Map();
      page.on('request', (r) => {
        if (r.resourceType() !== 'media') return;
        const entry = { at: Date.now(), range: r.headers()['range'] || null };
        seen.set(r, entry);
        requests.push(entry);
      });
      page.on('response', (res) => {
        const e = seen.get(res.request());
        if (e) { e.status = res.status(); e.head_at = Date.now(); }
      });
      page.on('requestfinished', async (r) => {
        const e = seen.get(r);
        if (!e) return;
        e.end_at = Date.now();
        try { e.body_bytes = (await r.sizes()).responseBodySize; } catch { /* gone with its context */ }
      });
      page.on('requestfailed', (r) => {
        const e = seen.get(r);
        if (e) { e.end_at = Date.now(); e.failed = r.failure()?.errorText; }
      });
    }
    await page.setContent('<!doctype html><video muted playsinline preload="none" width="640"></video>');
    let result;
    try {
      result = await page.evaluate(async ({ url, seeks, timeout }) => {
        const v = document.querySelector('video');
        const now = () => performance.timeOrigin + performance.now();
        // Resolves at the first frame painted (at `target` seconds, when given).
        const frame = (target) => new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no frame within ${timeout} ms (target ${target})`)),
            timeout);
          const cb = (_ts, meta) => {
            if (target === undefined || Math.abs(meta.mediaTime - target) < 0.5) {
              clearTimeout(timer);
              resolve(meta);
            } else {
              v.requestVideoFrameCallback(cb);
            }
          };
          v.requestVideoFrameCallback(cb);
        });
        const out = { start: now(), seeks: [] };
        const first = frame();
        v.src = url;
        v.play().catch(() => {});
        await first;
        out.first_frame = now();
        out.ttff_ms = out.first_frame - out.start;
        v.pause();
        for (const target of seeks) {
          const at = now();
          const painted = frame(target);
          v.currentTime = target;
          await painted;
          const done = now();
          out.seeks.push({ target, at, done, ms: done - at });
        }
        out.end = now();
        return out;
      }, { url: session.url, seeks: session.seeks || [], timeout: spec.timeout_ms || 60000 });
    } catch (e) {
      result = { error: String(e.message || e) };
    }
    await context.close();
    if (spec.trace) result.requests = requests;
    process.stdout.write(JSON.stringify({ label: session.label, ...result }) + '\n');
  }
} finally {
  await browser.close();
}
