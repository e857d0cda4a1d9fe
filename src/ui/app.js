// The mediagate library page: grid, player, upload. Plain JavaScript, no dependencies, no network
// access beyond this server.
'use strict';

const $ = (sel) => document.querySelector(sel);
const PER_PAGE = 48;
const state = { page: 1, pages: 0, q: '', type: '', info: null, pollTimer: 0, polls: 0, current: null };

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
  return t || '';
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
  const label = [item.title, item.kind, duration, formatSize(item.size)].filter(Boolean).join(', ');
  return el('li', {},
    el('a', { class: 'card', href: `#/item/${item.id}`, 'data-id': item.id, 'data-kind': item.kind, 'aria-label': label },
      el('div', { class: 'thumb' }, visual,
        el('span', { class: 'kind', text: item.kind }),
        duration ? el('span', { class: 'badge duration', text: duration }) : null),
      el('div', { class: 'card-body' },
        el('p', { class: 'card-title', text: item.title, title: item.title }),
        el('p', { class: 'card-meta', text: meta }))));
}

async function loadLibrary(append = false) {
  const status = $('#library-status');
  const params = new URLSearchParams({ page: String(state.page), per_page: String(PER_PAGE) });
  if (state.q) params.set('q', state.q);
  if (state.type) params.set('type', state.type);
  let data;
  try {
    data = await api('/api/media?' + params);
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

function embedSnippet(item) {
  const origin = location.origin;
  const src = origin + item.url;
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  if (item.kind === 'video') {
    const size = item.width && item.height ? ` width="${item.width}" height="${item.height}"` : '';
    const poster = item.poster ? ` poster="${origin + item.poster}"` : '';
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
  $('#library-view').hidden = true;
  $('#player-view').hidden = false;
  clearTimeout(state.pollTimer);
  const stage = $('#stage');
  const error = $('#player-error');
  stage.replaceChildren();
  error.hidden = true;
  let item;
  try {
    item = await api('/api/media/' + encodeURIComponent(id));
  } catch (e) {
    $('#player-title').textContent = 'Not found';
    error.textContent = e.message;
    error.hidden = false;
    return;
  }
  state.current = item;
  document.title = item.title + ' \u2013 mediagate';
  $('#player-title').textContent = item.title;
  let media;
  if (item.kind === 'video') {
    media = el('video', { id: 'player-media', src: item.url, controls: true, playsinline: true, preload: 'auto',
                          poster: item.poster, 'aria-label': item.title });
  } else if (item.kind === 'audio') {
    media = el('audio', { id: 'player-media', src: item.url, controls: true, preload: 'auto', 'aria-label': item.title });
  } else if (item.kind === 'image') {
    media = el('img', { id: 'player-media', src: item.url, alt: item.title });
  } else {
    media = el('p', { class: 'status', text: 'This file cannot be shown in the page; use Download.' });
  }
  media.addEventListener('error', () => {
    const code = media.error ? media.error.code : '';
    error.textContent = `The browser could not play this file${code ? ' (media error ' + code + ')' : ''}.`;
    error.hidden = false;
  });
  stage.append(media);
  showFacts(item);
  $('#embed-code').value = embedSnippet(item);
  $('#download').href = item.url;
  $('#download').setAttribute('download', item.key.split('/').pop());
  $('#main').focus();
}

function showLibrary() {
  const media = $('#player-media');
  if (media && media.pause) media.pause();
  $('#stage').replaceChildren();
  state.current = null;
  document.title = 'mediagate';
  $('#player-view').hidden = true;
  $('#library-view').hidden = false;
  reloadLibrary();
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
    if (/token/i.test(e.message)) sessionStorage.removeItem('mediagate-token');
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
  $('#rename').addEventListener('click', renameItem);
  $('#delete').addEventListener('click', deleteItem);
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
