// Playback and a seek with the server reading from S3, in Debian's chromium (playwright-core) and firefox-esr
// (puppeteer-core): the test starts its own radosgw on 127.0.0.1 (scripts/radosgw.sh, named by
// MEDIAGATE_RADOSGW_SH; run.sh sets it), creates a bucket, uploads the 30 MB seek clip of library.test.mjs with
// `mediagate put`, and serves it with `mediagate serve --storage s3://BUCKET` behind the recording proxy. The seek
// must be a new Range request answered 206 with the exact Content-Range, as from local storage
// (helpers.mjs checkSeekOverNetwork). radosgw is stopped at the end, also when a step fails.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, BROWSERS, SEEK_ARGS, SEEK_CLIP, adapter, checkHlsPlayback, checkSeekOverNetwork, ffmpeg,
  startRecordingProxy, startServer, waitForItems } from './helpers.mjs';

const RADOSGW_SH = process.env.MEDIAGATE_RADOSGW_SH;
const BUCKET = 'mediagate-e2e-' + crypto.randomBytes(6).toString('hex');
const S3_VARS = ['AWS_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION'];

let tmp;
let clusterDir;  // set once radosgw.sh start has been called: what stopCluster stops
let s3env;  // the variables radosgw.sh wrote to DIR/env
let server;
let proxy;
let id;
let cached;  // a second server on the same bucket with a slice cache, for HLS (issue 14)
let cachedProxy;
let cachedId;
const results = [];

// radosgw.sh writes its output to a file: a pipe could be held open by the daemons it starts.
function radosgw(command) {
  const log = path.join(tmp, `radosgw-${command}.log`);
  const fd = fs.openSync(log, 'w');
  try {
    execFileSync(RADOSGW_SH, [command, clusterDir], { stdio: ['ignore', fd, fd], timeout: 180000 });
  } catch (e) {
    throw new Error(`scripts/radosgw.sh ${command} failed: ${e.message}\n${fs.readFileSync(log, 'utf8').slice(-3000)}`);
  } finally {
    fs.closeSync(fd);
  }
}

// Idempotent; also run on exit and on SIGINT/SIGTERM, so no daemon outlives the test.
function stopCluster() {
  if (!clusterDir) return;
  const dir = clusterDir;
  try {
    radosgw('stop');
    clusterDir = null;
  } catch (e) {
    console.error(`could not stop the cluster in ${dir}: ${e.message}`);
  }
}
process.on('exit', stopCluster);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => { stopCluster(); process.exit(1); });
}

// The `export NAME=VALUE` lines of radosgw.sh's DIR/env.
function readEnv(file) {
  const env = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]] = m[2];
  }
  for (const k of S3_VARS) assert.ok(env[k], `${file} lacks ${k}`);
  return env;
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();

// An S3 request without a body, signed with Signature Version 4 (path-style, no query): enough to create a bucket.
async function s3(method, pathname) {
  const url = new URL(pathname, s3env.AWS_ENDPOINT_URL);
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const bodyHash = sha256('');
  const headers = { host: url.host, 'x-amz-content-sha256': bodyHash, 'x-amz-date': amzDate };
  const names = Object.keys(headers).sort();
  const canonical = [method, url.pathname, '', names.map((n) => `${n}:${headers[n]}\n`).join(''), names.join(';'),
    bodyHash].join('\n');
  const scope = `${day}/${s3env.AWS_REGION}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key = hmac('AWS4' + s3env.AWS_SECRET_ACCESS_KEY, day);
  for (const part of [s3env.AWS_REGION, 's3', 'aws4_request']) key = hmac(key, part);
  const signature = crypto.createHmac('sha256', key).update(toSign).digest('hex');
  const { host, ...sent } = headers;  // fetch sends Host itself, the same value
  sent.authorization = `AWS4-HMAC-SHA256 Credential=${s3env.AWS_ACCESS_KEY_ID}/${scope}, ` +
    `SignedHeaders=${names.join(';')}, Signature=${signature}`;
  const r = await fetch(url, { method, headers: sent });
  return { status: r.status, body: await r.text() };
}

before(async () => {
  assert.ok(BIN, 'set MEDIAGATE_BIN to the mediagate binary');
  assert.ok(RADOSGW_SH, 'set MEDIAGATE_RADOSGW_SH to scripts/radosgw.sh (tests/e2e/run.sh does)');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mediagate-e2e-s3-'));
  const clip = path.join(tmp, SEEK_CLIP);
  ffmpeg(SEEK_ARGS, clip);
  clusterDir = path.join(tmp, 'radosgw');
  radosgw('start');
  s3env = readEnv(path.join(clusterDir, 'env'));
  const env = { ...process.env, ...Object.fromEntries(S3_VARS.map((k) => [k, s3env[k]])) };

  const made = await s3('PUT', `/${BUCKET}`);
  assert.equal(made.status, 200, `CreateBucket ${BUCKET}: ${made.status} ${made.body}`);
  execFileSync(BIN, ['put', clip, `s3://${BUCKET}/${SEEK_CLIP}`], { env, stdio: ['ignore', 'inherit', 'inherit'] });

  server = await startServer(['--storage', `s3://${BUCKET}`, '--catalog', `sqlite:${path.join(tmp, 'catalog.db')}`,
    '--scan-on-start', '--access-log', 'off'], env);
  proxy = await startRecordingProxy(server.port);
  ({ [SEEK_CLIP]: id } = await waitForItems(proxy.base, 1));
  cached = await startServer(['--storage', `s3://${BUCKET}`, '--catalog', `sqlite:${path.join(tmp, 'cached.db')}`,
    '--scan-on-start', '--access-log', 'off', '--cache-dir', path.join(tmp, 'slice-cache')], env);
  cachedProxy = await startRecordingProxy(cached.port);
  ({ [SEEK_CLIP]: cachedId } = await waitForItems(cachedProxy.base, 1));
});

after(() => {
  if (proxy) proxy.close();
  if (server) server.proc.kill('SIGTERM');
  if (cachedProxy) cachedProxy.close();
  if (cached) cached.proc.kill('SIGTERM');
  stopCluster();
  if (tmp && !clusterDir) fs.rmSync(tmp, { recursive: true, force: true });  // kept when a daemon may live on
  console.log('\ne2e results (S3 storage):\n' + results.map((r) => '  ' + r).join('\n'));
});

for (const { name, kind, launch } of BROWSERS) {
  describe(`${name}, S3 storage`, () => {
    let browser;
    after(async () => { if (browser) await browser.close(); });

    test(`plays ${SEEK_CLIP} from S3; a seek is a new Range request answered 206 from the right offset`, async () => {
      let page;
      ({ browser, page } = await launch());
      const p = adapter(kind, page);
      await p.viewport(1280, 860);
      const size = fs.statSync(path.join(tmp, SEEK_CLIP)).size;
      await checkSeekOverNetwork(p, { base: proxy.base, proxy, id, size }, (summary) => {
        results.push(`${name}: ${summary}`);
      });
    });

    // The 40 s clip with a keyframe a second: 6 s segments, and the seek to 7 s needs 1/seg-1.m4s.
    test(`plays ${SEEK_CLIP} as HLS from S3 through the slice cache, seeks to 7 s`, async () => {
      const page = await browser.newPage();
      const p = adapter(kind, page);
      await checkHlsPlayback(p, { base: cachedProxy.base, proxy: cachedProxy, id: cachedId, duration: 40,
        seekSegment: '1/seg-1.m4s' }, (summary) => results.push(`${name}: HLS through the slice cache: ${summary}`));
    });
  });
}
