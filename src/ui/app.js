// The mediagate library page: grid, player, upload. Plain JavaScript, no dependencies, no network
// access beyond this server.
'use strict';

const $ = (sel) => document.querySelector(sel);
const PER_PAGE = 48;
const state = { page: 1, pages: 0, q: '', type: '', info: null, pollTimer: 0, polls: 0, current: null, seq: 0,
  hls: null };
// Lifetimes of private links (seconds) and their names; playback on this page uses its own link.
const TTLS = { 3600: '1 hour', 86400: '1 day', 604800: '7 days' };
const PLAY_TTL = 6 * 3600;
const VISIBILITIES = [['inherit', 'Inherit (server rules)'], ['public', 'Public'], ['private', 'Private']];

// ---------------------------------------------------------------- formatting

function formatDuration(seconds) {
  if (seconds == null || !isFinite(seconds)) return '';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return (h ? h + ':' : '') + mm + ':' + String(r).padStart(2, '0');
}

function formatSize(bytes) {
  if (bytes < 1024) return bytes + ' B';
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = bytes / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + ' ' + units[i];
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

// Streaming mode of the player, kept in this browser: 'auto' (the default: HLS for an MP4/MOV item whose master
// playlist the server makes, i.e. H.264/H.265 with AAC; the file itself otherwise), 'progressive' (the file
// itself, with ranges) or 'hls'. HLS is the server's repackaging on the fly (/v/{id}/hls/master.m3u8), played by
// hls.js through MSE (embedded: /ui/hls.min.js, hls.js 1.7.4 from npm, the full build: the light one plays
// neither the separate audio rendition nor subtitles), or natively where there is no MSE (Safari on iPhone).
const STREAM_KEY = 'mediagate.stream';
function streamMode() {
  try {
    const mode = localStorage.getItem(STREAM_KEY);
    return mode === 'hls' || mode === 'progressive' ? mode : 'auto';
  } catch (e) { return 'auto'; }
}
// Whether the server makes HLS of this item: its master playlist answers 200 (415 or 422 say it does not:
// WebM, another codec, a broken index), naming codecs this browser plays.
async function hlsAvailable(url) {
  try {
    const r = await fetch(url);
    if (!r.ok) return false;
    const codecs = /CODECS="([^"]+)"/.exec(await r.text());
    if (!codecs) return false;
    if (window.MediaSource) return MediaSource.isTypeSupported(`video/mp4; codecs="${codecs[1]}"`);
    return canPlayHlsNatively();
  } catch (e) { return false; }
}
function canPlayHlsNatively() {
  return document.createElement('video').canPlayType('application/vnd.apple.mpegurl') !== '';
}
function canStreamHls(item, src) {
  return item.kind === 'video' && !src.need && /^video\/(mp4|quicktime)$/.test(item.content_type || '');
}
let hlsScript = null;
function loadHls() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsScript) {
    hlsScript = new Promise((resolve, reject) => {
      const s = el('script', { src: '/ui/hls.min.js' });
      s.addEventListener('load', () => resolve(window.Hls));
      s.addEventListener('error', () => { hlsScript = null; reject(new Error('hls.js did not load')); });
      document.head.append(s);
    });
  }
  return hlsScript;
}
// Plays `url` (a master playlist) in `video`: hls.js where the browser has Media Source Extensions, else the
// browser's own HLS (Safari on iPhone). hls.js first, as its authors advise: browsers that also play HLS
// themselves (Safari on macOS, recent Chromium) then behave alike, with the same subtitle and audio handling.
async function attachHls(video, url, onError) {
  const Hls = await loadHls().catch(() => null);
  if (Hls && Hls.isSupported()) {
    // No worker: the page's CSP allows scripts from this origin only, not from blob: URLs.
    const hls = new Hls({ enableWorker: false });
    hls.on(Hls.Events.ERROR, (_, data) => { if (data.fatal) onError(data.type + ': ' + data.details); });
    hls.loadSource(url);
    hls.attachMedia(video);
    video.dataset.stream = 'hls.js';
    video.hls = hls;  // for tests and the console: its audio and subtitle tracks
    return hls;
  }
  if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = url;
    video.dataset.stream = 'native-hls';
    return null;
  }
  onError('this browser plays neither HLS nor Media Source Extensions');
  return null;
}

function toast(message) {
  const t = $('#toast');
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 2500);
}

async function api(path, options = {}) {
  const res = await fetch(path, options);
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

function token() { return sessionStorage.getItem('mediagate-token') || ''; }
function askToken() {
  const t = window.prompt('Admin token');
  if (t) sessionStorage.setItem('mediagate-token', t);
  showAdmin();
  return t || '';
}
function authHeaders() { return token() ? { Authorization: 'Bearer ' + token() } : {}; }
function dropToken() {
  sessionStorage.removeItem('mediagate-token');
  showAdmin();
}

// ---------------------------------------------------------------- private media (admin)

function linkTtl() {
  const v = Number(sessionStorage.getItem('mediagate-link-ttl'));
  return TTLS[v] ? v : 3600;
}

function copyLinkLabel() { return `Copy private link (expires in ${TTLS[linkTtl()]})`; }

function formatExpiry(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

// The header button and the admin bar follow the token.
function showAdmin() {
  const admin = Boolean(token());
  const button = $('#admin-toggle');
  button.textContent = admin ? 'Sign out' : 'Admin sign in';
  button.setAttribute('aria-label', admin ? 'Sign out of admin' : 'Sign in as admin (enter the admin token)');
  $('#admin-bar').hidden = !admin;
  for (const s of document.querySelectorAll('.link-ttl')) s.value = String(linkTtl());
}

// Whether the item opens only with a signed link: private, or (inherit) under the server's signed rules, which the
// page learns by asking for the item without the token (a 404 then: the API shows it to the admin only).
const anonymousCache = new Map();  // id -> Promise<boolean>
function needsLink(item) {
  if (item.visibility === 'private') return Promise.resolve(true);
  if (item.visibility === 'public') return Promise.resolve(false);
  if (!anonymousCache.has(item.id)) {
    anonymousCache.set(item.id, fetch('/api/media/' + encodeURIComponent(item.id), { cache: 'no-store' })
      .then((r) => r.status === 404, () => false));
  }
  return anonymousCache.get(item.id);
}

// POST /api/media/{id}/links: {url, path, media_path, expires}.
function mintLink(id, ttl) {
  return api('/api/media/' + encodeURIComponent(id) + '/links', {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...authHeaders() },
    body: JSON.stringify({ ttl }) });
}

function linkQuery(link) { return link.path.slice(link.path.indexOf('?') + 1); }

// Copies a fresh link to the clipboard, or shows it selected in the read-only input when the clipboard is not
// available; the status tells when it expires, in the reader's locale.
async function copyPrivateLink(item, ui) {
  ui.button.disabled = true;
  ui.status.textContent = 'Making a link\u2026';
  try {
    const link = await mintLink(item.id, linkTtl());
    const when = formatExpiry(link.expires);
    let copied = false;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      try { await navigator.clipboard.writeText(link.url); copied = true; } catch (e) { /* fall back below */ }
    }
    ui.input.value = link.url;
    ui.input.hidden = copied;
    const time = el('time', { datetime: link.expires, text: when });
    if (copied) {
      ui.status.replaceChildren('Private link copied; it expires ', time, '.');
      toast('Private link copied');
    } else {
      ui.status.replaceChildren('Copy this private link; it expires ', time, '.');
      ui.input.focus();
      ui.input.select();
    }
  } catch (e) {
    if (/token/i.test(e.message)) dropToken();
    ui.status.textContent = 'No link: ' + e.message;
  } finally {
    ui.button.disabled = false;
  }
}

async function changeVisibility(item, visibility) {
  const updated = await api('/api/media/' + encodeURIComponent(item.id), {
    method: 'PATCH', headers: { 'Content-Type': 'application/json', ...authHeaders() },
    body: JSON.stringify({ visibility }) });
  anonymousCache.delete(item.id);
  return updated;
}

function visibilitySelect(item, attrs) {
  const select = el('select', { class: 'visibility', ...attrs },
    ...VISIBILITIES.map(([v, text]) => el('option', { value: v, text })));
  select.value = item.visibility || 'inherit';
  return select;
}

// The admin's controls under a card: visibility, and the link button for items that need a link.
function cardAdmin(item, li) {
  const status = el('p', { class: 'link-status status', role: 'status', 'aria-live': 'polite' });
  const input = el('input', { class: 'link-url', type: 'text', readonly: true, hidden: true,
                              'aria-label': `Private link to ${item.title}` });
  const button = el('button', { class: 'button copy-link', type: 'button', hidden: true, text: copyLinkLabel(),
                                'aria-label': `${copyLinkLabel()}: ${item.title}` });
  const select = visibilitySelect(item, { 'aria-label': `Visibility of ${item.title}` });
  const access = el('span', { class: 'access muted' });
  button.addEventListener('click', () => copyPrivateLink(item, { button, status, input }));
  select.addEventListener('change', async () => {
    select.disabled = true;
    try {
      const updated = await changeVisibility(item, select.value);
      const next = card(updated);
      li.replaceWith(next);
      const again = next.querySelector('select.visibility');
      if (again) again.focus();
      toast(`\u201C${updated.title}\u201D is now ${updated.visibility}`);
    } catch (e) {
      if (/token/i.test(e.message)) dropToken();
      select.value = item.visibility || 'inherit';
      select.disabled = false;
      toast(e.message);
    }
  });
  needsLink(item).then((need) => {
    button.hidden = !need;
    access.textContent = need ? 'needs a link' : 'open to all';
    li.dataset.needsLink = String(need);
    const lock = li.querySelector('.lock');
    if (lock) lock.hidden = !need;
  });
  return el('div', { class: 'card-admin' },
    el('div', { class: 'card-admin-row' }, select, access), button, status, input);
}

// ---------------------------------------------------------------- library grid

function card(item) {
  let visual;
  if (item.poster) visual = el('img', { src: item.poster, alt: '', loading: 'lazy', decoding: 'async' });
  else if (item.kind === 'image') visual = el('img', { src: item.url, alt: '', loading: 'lazy', decoding: 'async' });
  else visual = el('span', { class: 'glyph', 'aria-hidden': 'true', text: item.kind === 'audio' ? '\u266B' : '\u25B6' });
  const duration = formatDuration(item.duration);
  const dims = item.width && item.height ? `${item.width}\u00D7${item.height}` : '';
  const meta = [formatSize(item.size), dims].filter(Boolean).join(' \u00B7 ');
  const admin = Boolean(token());
  const label = [item.title, item.kind, admin && item.visibility !== 'inherit' ? item.visibility : '', duration,
                 formatSize(item.size)].filter(Boolean).join(', ');
  // Posters of private items open only with a link: the admin sees the glyph instead of a broken picture.
  if (visual.tagName === 'IMG') {
    visual.addEventListener('error', () => visual.replaceWith(el('span', { class: 'glyph', 'aria-hidden': 'true',
      text: item.kind === 'audio' ? '\u266B' : '\u25B6' })), { once: true });
  }
  const li = el('li', { 'data-id': item.id, 'data-visibility': item.visibility || 'inherit' });
  li.append(
    el('a', { class: 'card', href: `#/item/${item.id}`, 'data-id': item.id, 'data-kind': item.kind, 'aria-label': label },
      el('div', { class: 'thumb' }, visual,
        el('span', { class: 'kind', text: item.kind }),
        admin ? el('span', { class: 'lock', text: 'Private', hidden: true }) : null,
        duration ? el('span', { class: 'badge duration', text: duration }) : null),
      el('div', { class: 'card-body' },
        el('p', { class: 'card-title', text: item.title, title: item.title }),
        el('p', { class: 'card-meta', text: meta }))));
  if (admin) li.append(cardAdmin(item, li));
  return li;
}

async function loadLibrary(append = false) {
  const status = $('#library-status');
  const params = new URLSearchParams({ page: String(state.page), per_page: String(PER_PAGE) });
  if (state.q) params.set('q', state.q);
  if (state.type) params.set('type', state.type);
  let data;
  try {
    data = await api('/api/media?' + params, { headers: authHeaders() });
  } catch (e) {
    status.textContent = 'Could not load the library: ' + e.message;
    return;
  }
  state.pages = data.pages;
  const grid = $('#grid');
  if (!append) grid.replaceChildren();
  for (const item of data.items) grid.append(card(item));
  if (!grid.children.length) {
    grid.append(el('li', { class: 'empty', text: state.q || state.type
      ? 'Nothing matches.' : 'No media yet. Upload a file, or run "mediagate scan" over your storage.' }));
  }
  $('#count').textContent = `(${data.total})`;
  status.textContent = '';
  $('#load-more').hidden = state.page >= state.pages;
  document.body.dataset.libraryLoaded = 'true';
  // Probes (duration, poster) finish in the background: refresh while some are pending.
  clearTimeout(state.pollTimer);
  if (data.items.some((i) => !i.probed) && state.polls < 60 && !append) {
    state.polls++;
    state.pollTimer = setTimeout(() => { if (!$('#library-view').hidden) loadLibrary(); }, 1500);
  }
}

function reloadLibrary() {
  state.page = 1;
  state.polls = 0;
  return loadLibrary();
}

// ---------------------------------------------------------------- player

function embedSnippet(item, media = { src: item.url, poster: item.poster }) {
  const origin = location.origin;
  const src = origin + media.src;
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  if (item.kind === 'video') {
    const size = item.width && item.height ? ` width="${item.width}" height="${item.height}"` : '';
    const poster = media.poster ? ` poster="${origin + media.poster}"` : '';
    return `<video src="${src}" controls preload="metadata" playsinline${poster}${size}></video>`;
  }
  if (item.kind === 'audio') return `<audio src="${src}" controls preload="metadata"></audio>`;
  return `<img src="${src}" alt="${esc(item.title)}">`;
}

function showFacts(item) {
  const facts = [['Type', item.content_type], ['Size', formatSize(item.size)]];
  if (item.duration != null) facts.push(['Duration', formatDuration(item.duration)]);
  if (item.width && item.height) facts.push(['Dimensions', `${item.width} \u00D7 ${item.height}`]);
  facts.push(['Key', item.key], ['Added', new Date(item.created).toLocaleString()]);
  $('#facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
}

async function showItem(id) {
  const seq = ++state.seq;
  $('#library-view').hidden = true;
  $('#player-view').hidden = false;
  clearTimeout(state.pollTimer);
  const stage = $('#stage');
  const error = $('#player-error');
  stopHls();
  stage.replaceChildren();
  error.hidden = true;
  $('#item-admin').hidden = true;
  let item;
  // A private item: the admin's page plays it through a freshly minted link (the page cannot open /v/{id} of a
  // private item without one); its poster opens with the same link.
  const src = {};
  try {
    item = await api('/api/media/' + encodeURIComponent(id), { headers: authHeaders() });
    src.src = item.url;
    src.poster = item.poster;
    src.need = Boolean(token()) && await needsLink(item);
    if (src.need) {
      const link = await mintLink(item.id, PLAY_TTL);
      src.src = link.path;
      src.poster = item.poster ? item.poster + '?' + linkQuery(link) : null;
      src.query = '?' + linkQuery(link);
      src.url = link.url;
    }
  } catch (e) {
    if (seq !== state.seq) return;
    if (/token/i.test(e.message)) dropToken();
    $('#player-title').textContent = item ? item.title : 'Not found';
    error.textContent = item ? 'This item is private and the page could not get a link to play it: ' + e.message
      : e.message + (token() ? '' : ' (private items open for the admin: sign in)');
    error.hidden = false;
    if (item) {  // the admin can still change its visibility
      state.current = item;
      showFacts(item);
      showItemAdmin(item, true);
    }
    return;
  }
  if (seq !== state.seq) return;
  state.current = item;
  document.title = item.title + ' \u2013 mediagate';
  $('#player-title').textContent = item.title;
  let media;
  const mode = streamMode();
  const master = src.src.replace(/\?.*$/, '') + '/hls/master.m3u8';
  const hls = canStreamHls(item, src) && mode !== 'progressive' && await hlsAvailable(master);
  if (seq !== state.seq) return;
  if (item.kind === 'video') {
    media = el('video', { id: 'player-media', src: hls ? null : src.src, controls: true, playsinline: true,
                          preload: 'auto', poster: src.poster, 'aria-label': item.title });
    if (hls) {
      const showError = (why) => {
        error.textContent = 'HLS playback failed: ' + why;
        error.hidden = false;
      };
      state.hls = await attachHls(media, master, showError);
      if (seq !== state.seq) return;
    } else {
      media.dataset.stream = 'progressive';
    }
  } else if (item.kind === 'audio') {
    media = el('audio', { id: 'player-media', src: src.src, controls: true, preload: 'auto', 'aria-label': item.title });
  } else if (item.kind === 'image') {
    media = el('img', { id: 'player-media', src: src.src, alt: item.title });
  } else {
    media = el('p', { class: 'status', text: 'This file cannot be shown in the page; use Download.' });
  }
  media.addEventListener('error', () => {
    const code = media.error ? media.error.code : '';
    error.textContent = `The browser could not play this file${code ? ' (media error ' + code + ')' : ''}.`;
    error.hidden = false;
  });
  stage.append(media);
  if (item.kind === 'video') addSeekThumbnails(media, item, src.query || '', seq);
  showFacts(item);
  $('#embed-code').value = embedSnippet(item, src);
  $('#download').href = src.src;
  showItemAdmin(item, src.need);
  $('#download').setAttribute('download', item.key.split('/').pop());
  $('#main').focus();
}

// ---------------------------------------------------------------- seek thumbnails

// The cues of a thumbnails WebVTT track: [{start, end, url, x, y, w, h}], image URLs resolved against the track's.
function parseThumbnailsVtt(text, base) {
  const seconds = (t) => t.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
  const cues = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length - 1; i++) {
    const m = lines[i].match(/^([\d:.]+)\s+-->\s+([\d:.]+)/);
    if (!m) continue;
    const [ref, frag] = lines[i + 1].split('#xywh=');
    const xywh = (frag || '').split(',').map(Number);
    if (!ref || xywh.length !== 4 || xywh.some(Number.isNaN)) continue;
    cues.push({ start: seconds(m[1]), end: seconds(m[2]), url: new URL(ref, base).href,
                x: xywh[0], y: xywh[1], w: xywh[2], h: xywh[3] });
  }
  return cues;
}

// A strip under the video: hovering shows the frame at that time (from /v/{id}/thumbs.vtt), a click seeks there.
// Items without thumbnails (404) keep the native controls only.
async function addSeekThumbnails(media, item, query, seq) {
  const url = new URL(item.url + '/thumbs.vtt' + query, location.href).href;
  let cues;
  try {
    const r = await fetch(url);
    if (!r.ok) return;
    cues = parseThumbnailsVtt(await r.text(), url);
  } catch { return; }
  if (seq !== state.seq || !cues.length) return;
  const duration = cues[cues.length - 1].end;
  const played = el('div', { class: 'scrub-played' });
  const preview = el('div', { class: 'scrub-preview', hidden: true });
  const label = el('span', { class: 'scrub-time' });
  preview.append(label);
  const strip = el('div', { id: 'scrub', class: 'scrub', role: 'slider', tabindex: '0', 'aria-label': 'Seek',
                            'aria-valuemin': '0', 'aria-valuemax': String(Math.round(duration)) }, played, preview);
  const timeAt = (ev) => {
    const box = strip.getBoundingClientRect();
    return box.width > 0 ? Math.min(Math.max((ev.clientX - box.left) / box.width, 0), 1) * duration : 0;
  };
  strip.addEventListener('mousemove', (ev) => {
    const t = timeAt(ev);
    const cue = cues.find((c) => t >= c.start && t < c.end) || cues[cues.length - 1];
    preview.style.backgroundImage = `url("${cue.url}")`;
    preview.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    preview.style.width = cue.w + 'px';
    preview.style.height = cue.h + 'px';
    const box = strip.getBoundingClientRect();
    preview.style.left = Math.min(Math.max(ev.clientX - box.left - cue.w / 2, 0), box.width - cue.w) + 'px';
    preview.dataset.cue = String(cues.indexOf(cue));
    label.textContent = formatDuration(t);
    preview.hidden = false;
  });
  strip.addEventListener('mouseleave', () => { preview.hidden = true; });
  strip.addEventListener('click', (ev) => { media.currentTime = timeAt(ev); });
  strip.addEventListener('keydown', (ev) => {
    const step = ev.key === 'ArrowRight' ? 5 : ev.key === 'ArrowLeft' ? -5 : 0;
    if (step) { media.currentTime = Math.min(Math.max(media.currentTime + step, 0), duration); ev.preventDefault(); }
  });
  media.addEventListener('timeupdate', () => {
    played.style.width = Math.min(media.currentTime / duration, 1) * 100 + '%';
    strip.setAttribute('aria-valuenow', String(Math.round(media.currentTime)));
  });
  media.after(strip);
}

function stopHls() {
  if (state.hls) state.hls.destroy();
  state.hls = null;
}

function showLibrary() {
  stopHls();
  const media = $('#player-media');
  if (media && media.pause) media.pause();
  $('#stage').replaceChildren();
  state.current = null;
  document.title = 'mediagate';
  $('#player-view').hidden = true;
  $('#library-view').hidden = false;
  reloadLibrary();
}

// The player view's admin controls: visibility, link lifetime, "Copy private link".
function showItemAdmin(item, need) {
  const box = $('#item-admin');
  box.hidden = !token();
  if (box.hidden) return;
  $('#item-visibility').value = item.visibility || 'inherit';
  $('#item-visibility').disabled = false;
  $('#item-access').textContent = need ? 'needs a link' : 'open to all';
  const button = $('#item-copy-link');
  button.hidden = !need;
  button.textContent = copyLinkLabel();
  $('#item-link-status').textContent = '';
  $('#item-link-url').hidden = true;
  $('#item-link-url').value = '';
}

async function onItemVisibility() {
  const item = state.current;
  const select = $('#item-visibility');
  if (!item) return;
  select.disabled = true;
  try {
    const updated = await changeVisibility(item, select.value);
    toast(`\u201C${updated.title}\u201D is now ${updated.visibility}`);
    await showItem(item.id);  // plays through a link, or without one, as the item now needs
    $('#item-visibility').focus();
  } catch (e) {
    if (/token/i.test(e.message)) dropToken();
    select.value = item.visibility || 'inherit';
    select.disabled = false;
    toast(e.message);
  }
}

function onTtlChange(event) {
  sessionStorage.setItem('mediagate-link-ttl', event.target.value);
  for (const s of document.querySelectorAll('.link-ttl')) s.value = String(linkTtl());
  for (const b of document.querySelectorAll('.copy-link')) {
    const title = b.getAttribute('aria-label');
    b.textContent = copyLinkLabel();
    if (title) b.setAttribute('aria-label', copyLinkLabel() + title.slice(title.indexOf(')') + 1));
  }
}

function toggleAdmin() {
  if (token()) dropToken();
  else if (!askToken()) return;
  if ($('#player-view').hidden) reloadLibrary();
  else route();
}

function route() {
  const m = location.hash.match(/^#\/item\/([A-Za-z0-9]+)$/);
  if (m) showItem(m[1]);
  else showLibrary();
}

async function copyEmbed() {
  const text = $('#embed-code').value;
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const area = $('#embed-code');
    area.focus();
    area.select();
    document.execCommand('copy');
  }
  toast('Embed snippet copied');
}

async function withToken(action) {
  let t = token() || askToken();
  if (!t) return;
  try {
    await action(t);
  } catch (e) {
    if (/token/i.test(e.message)) dropToken();
    toast(e.message);
  }
}

function renameItem() {
  const item = state.current;
  if (!item) return;
  const title = window.prompt('New title', item.title);
  if (!title || title === item.title) return;
  withToken(async (t) => {
    const updated = await api('/api/media/' + item.id, {
      method: 'PATCH', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + t },
      body: JSON.stringify({ title }) });
    state.current = updated;
    document.title = updated.title + ' \u2013 mediagate';
    $('#player-title').textContent = updated.title;
    toast('Renamed');
  });
}

function deleteItem() {
  const item = state.current;
  if (!item || !window.confirm(`Delete "${item.title}" from storage?`)) return;
  withToken(async (t) => {
    await api('/api/media/' + item.id, { method: 'DELETE', headers: { Authorization: 'Bearer ' + t } });
    toast('Deleted');
    location.hash = '#/';
  });
}

// ---------------------------------------------------------------- upload

function openUpload() {
  const dialog = $('#upload-dialog');
  $('#upload-token').value = token();
  $('#upload-status').textContent = '';
  $('#upload-progress').hidden = true;
  const enabled = !state.info || state.info.uploads;
  $('#upload-disabled').hidden = enabled;
  dialog.showModal();
  $('#upload-file').focus();
}

function upload(event) {
  event.preventDefault();
  const file = $('#upload-file').files[0];
  const status = $('#upload-status');
  const progress = $('#upload-progress');
  if (!file) { status.textContent = 'Choose a file first.'; return; }
  const max = state.info && state.info.max_upload_bytes;
  if (max && file.size > max) { status.textContent = `The file is larger than the limit (${formatSize(max)}).`; return; }
  const tokenValue = $('#upload-token').value.trim();
  if (!tokenValue) { status.textContent = 'Enter the admin token.'; $('#upload-token').focus(); return; }
  sessionStorage.setItem('mediagate-token', tokenValue);
  showAdmin();

  const form = new FormData();
  const title = $('#upload-title').value.trim();
  if (title) form.append('title', title);
  form.append('file', file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', '/api/media');
  xhr.setRequestHeader('Authorization', 'Bearer ' + tokenValue);
  xhr.responseType = 'json';
  progress.hidden = false;
  progress.value = 0;
  $('#upload-submit').disabled = true;
  status.textContent = 'Uploading\u2026';
  xhr.upload.addEventListener('progress', (e) => {
    if (!e.lengthComputable) return;
    const pct = Math.floor((e.loaded / e.total) * 100);
    progress.value = pct;
    status.textContent = `Uploading\u2026 ${pct}% (${formatSize(e.loaded)} of ${formatSize(e.total)})`;
  });
  const done = () => { $('#upload-submit').disabled = false; };
  xhr.addEventListener('load', () => {
    done();
    const body = xhr.response;
    if (xhr.status === 200 || xhr.status === 201) {
      progress.value = 100;
      status.textContent = `Uploaded \u201C${body.title}\u201D.`;
      $('#upload-form').reset();
      $('#upload-dialog').close();
      toast(`Uploaded \u201C${body.title}\u201D`);
      if (location.hash && location.hash !== '#/') location.hash = '#/';
      else reloadLibrary();
      return;
    }
    if (xhr.status === 401) sessionStorage.removeItem('mediagate-token');
    status.textContent = 'Upload failed: ' + ((body && body.error) || `${xhr.status} ${xhr.statusText}`);
  });
  xhr.addEventListener('error', () => { done(); status.textContent = 'Upload failed: the connection broke.'; });
  xhr.addEventListener('abort', () => { done(); status.textContent = 'Upload cancelled.'; });
  $('#upload-cancel').onclick = () => { xhr.abort(); };
  xhr.send(form);
}

// ---------------------------------------------------------------- wiring

document.addEventListener('DOMContentLoaded', async () => {
  $('#open-upload').addEventListener('click', openUpload);
  $('#upload-form').addEventListener('submit', upload);
  $('#upload-cancel').onclick = () => $('#upload-dialog').close();
  $('#upload-dialog').addEventListener('close', () => { $('#upload-cancel').onclick = () => $('#upload-dialog').close(); });
  $('#copy-embed').addEventListener('click', copyEmbed);
  $('#stream-mode').value = streamMode();
  $('#stream-mode').addEventListener('change', () => {
    try { localStorage.setItem(STREAM_KEY, $('#stream-mode').value); } catch (e) { /* private browsing */ }
    if (state.current) showItem(state.current.id);
  });
  $('#rename').addEventListener('click', renameItem);
  $('#delete').addEventListener('click', deleteItem);
  $('#admin-toggle').addEventListener('click', toggleAdmin);
  for (const s of document.querySelectorAll('.link-ttl')) s.addEventListener('change', onTtlChange);
  $('#item-visibility').addEventListener('change', onItemVisibility);
  $('#item-copy-link').addEventListener('click', () => {
    if (state.current) {
      copyPrivateLink(state.current, { button: $('#item-copy-link'), status: $('#item-link-status'),
                                       input: $('#item-link-url') });
    }
  });
  showAdmin();
  $('#load-more').addEventListener('click', () => { state.page++; loadLibrary(true); });
  let debounce = 0;
  $('#q').addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { state.q = $('#q').value.trim(); reloadLibrary(); }, 250);
  });
  $('#type').addEventListener('change', () => { state.type = $('#type').value; reloadLibrary(); });
  $('#search').addEventListener('submit', (e) => { e.preventDefault(); state.q = $('#q').value.trim(); reloadLibrary(); });
  document.addEventListener('keydown', (e) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (e.key === '/' && !typing && !$('#upload-dialog').open) { e.preventDefault(); $('#q').focus(); }
    if (e.key === 'Escape' && !$('#player-view').hidden && !$('#upload-dialog').open) location.hash = '#/';
  });
  window.addEventListener('hashchange', route);
  try {
    state.info = await api('/api/info');
    if (!state.info.uploads) $('#open-upload').title = 'Uploads are disabled on this server';
  } catch (e) { /* the page still works without it */ }
  route();
});
