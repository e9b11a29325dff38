// The channel page: lists /channels.json every 2 s, one card per channel with its live
// state and a player (hls.js where Media Source Extensions exist, native HLS on Safari).
// No framework, no external URL: the appliance may have no internet.
//
// Signed channels ("signed": true in channels.json) need a token: the page plays one when
// it was opened as /?channel=<id>&token=<token> (twincastctl hls-url <id> --page prints
// that URL); the token goes on the playlist's URL and the origin carries it into every URI
// it answers. Without it the card says so, and Play shows the origin's refusal.
'use strict';

(function () {
  const kRefreshMs = 2000;
  const kKnown = new Set(['id', 'name', 'state', 'url', 'signed', 'encrypted']);
  // The token this page was opened with, for its channel.
  const tokens = new Map();
  try {
    const q = new URLSearchParams((window.location && window.location.search) || '');
    if (q.get('channel') && q.get('token')) tokens.set(q.get('channel'), q.get('token'));
  } catch (e) { /* no location (tests): no token */ }
  const cards = new Map();  // id -> {root, state, fields, video, button, hls}
  const list = document.getElementById('channels');
  const status = document.getElementById('status');

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A field value as short text (objects and arrays as compact JSON).
  function show(v) {
    if (v === null || v === undefined) return '-';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function playlistUrl(ch) {
    const url = ch.url || ('/hls/' + encodeURIComponent(ch.id) + '/index.m3u8');
    const token = ch.signed ? tokens.get(String(ch.id)) : undefined;
    if (!token) return url;
    return url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
  }

  function accessText(ch) {
    const parts = [];
    if (ch.signed) parts.push(tokens.has(String(ch.id)) ? 'signed URL (token given)' : 'signed URL: open this page with ?channel=' + ch.id + '&token=…');
    if (ch.encrypted) parts.push('AES-128');
    return parts.join(' · ');
  }

  function stop(card) {
    if (card.hls) {
      card.hls.destroy();
      card.hls = null;
    }
    card.video.removeAttribute('src');
    card.video.load();
    card.button.textContent = 'Play';
    card.playing = false;
  }

  function play(card) {
    const url = card.url;
    const video = card.video;
    card.error.textContent = '';
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({ liveDurationInfinity: true });
      hls.on(window.Hls.Events.ERROR, function (_event, data) {
        if (!data.fatal) return;
        const code = data.response && data.response.code ? ' (HTTP ' + data.response.code + ')' : '';
        card.error.textContent = 'player: ' + data.type + ' ' + data.details + code +
          (data.response && data.response.code === 403 ? ': refused, the token is missing, wrong or expired' : '');
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      card.hls = hls;
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = url;  // Safari plays HLS natively
    } else {
      card.error.textContent = 'this browser cannot play HLS (hls.js missing: /static/hls.min.js)';
      return;
    }
    video.play().catch(function () { /* autoplay refused: the controls remain */ });
    card.button.textContent = 'Stop';
    card.playing = true;
  }

  function makeCard(ch) {
    const root = el('section', { class: 'channel', id: 'channel-' + ch.id });
    const title = el('h2');
    const name = el('span', {}, ch.name || ch.id);
    const state = el('span', { class: 'state' });
    title.append(name, state);
    const video = el('video', { controls: '', muted: '', playsinline: '', preload: 'none' });
    video.muted = true;
    const button = el('button', { type: 'button' }, 'Play');
    const link = el('a', { href: playlistUrl(ch) }, 'playlist');
    const error = el('div', { class: 'error' });
    const access = el('div', { class: 'access muted' });
    const fields = el('dl');
    const controls = el('div');
    controls.append(button, ' ', link);
    root.append(title, video, controls, access, error, fields);
    const card = {
      root, name, state, fields, video, button, link, error, access, hls: null, playing: false, url: playlistUrl(ch),
    };
    button.addEventListener('click', function () { card.playing ? stop(card) : play(card); });
    return card;
  }

  function update(card, ch) {
    card.name.textContent = ch.name || ch.id;
    const state = show(ch.state);
    card.state.textContent = state;
    card.state.className = 'state ' + state.toLowerCase().replace(/[^a-z0-9_-]/g, '');
    card.access.textContent = accessText(ch);
    const url = playlistUrl(ch);
    if (url !== card.url) {
      card.url = url;
      card.link.href = url;
      if (card.playing) { stop(card); play(card); }
    }
    card.fields.replaceChildren();
    card.fields.append(el('dt', {}, 'id'), el('dd', {}, show(ch.id)));
    for (const [k, v] of Object.entries(ch)) {
      if (kKnown.has(k)) continue;
      card.fields.append(el('dt', {}, k), el('dd', {}, show(v)));
    }
  }

  function render(channels) {
    const seen = new Set();
    for (const ch of channels) {
      if (!ch || ch.id === undefined) continue;
      const id = String(ch.id);
      seen.add(id);
      let card = cards.get(id);
      if (!card) {
        card = makeCard(ch);
        cards.set(id, card);
      }
      list.append(card.root);  // keeps the source's order; an existing node just moves
      update(card, ch);
    }
    for (const [id, card] of cards) {
      if (seen.has(id)) continue;
      stop(card);
      card.root.remove();
      cards.delete(id);
    }
    status.textContent = channels.length + ' channel' + (channels.length === 1 ? '' : 's') +
      ' · updated ' + new Date().toLocaleTimeString() + (window.Hls ? '' : ' · hls.js missing: native HLS only');
    status.className = 'muted';
  }

  async function refresh() {
    try {
      const res = await fetch('/channels.json', { cache: 'no-cache' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const channels = await res.json();
      if (!Array.isArray(channels)) throw new Error('channels.json is not an array');
      render(channels);
    } catch (e) {
      status.textContent = 'cannot read /channels.json: ' + e.message;
      status.className = 'error';
    } finally {
      setTimeout(refresh, kRefreshMs);
    }
  }

  refresh();
})();
