#!/usr/bin/env node
// A real browser plays a live channel from the appliance's web page (issue #5).
//
//   node tests/browser/play_hls.mjs <page-url> <channel-id> [--seconds N] [--min-advance N]
//                                   [--max-seconds N] [--screenshot FILE] [--token T]
//                                   [--expect-refused]
//
// Debian's Chromium (/usr/bin/chromium, or $CHROMIUM), headless, driven by playwright-core
// (tests/browser/package.json; scripts/setup runs npm ci here). The script opens the page
// (control/web: index.html + app.js + hls.min.js), waits for the channel's card
// (section#channel-<id>), clicks its Play button as a user would, waits until the video
// plays, then samples video.currentTime every 250 ms for --seconds (12) of wall time, or
// longer, up to --max-seconds (20), while playback has not yet advanced --min-advance (a
// hiccup of a loaded machine is not a failure; a source that stopped still is).
// --screenshot: a PNG of the page at the end, pass or fail.
// --token: the channel is signed; the page is opened as <page-url>?channel=<id>&token=<T>,
// as `twincastctl hls-url <id> --page` prints it.
// --expect-refused: the opposite check, for a wrong or expired token: it passes only when
// the origin answered 403 for the channel's HLS, hls.js raised a fatal error, the page
// shows an error for the card and playback did not advance.
//
// It passes (exit 0) only when, over that window:
//   - playback advanced >= --min-advance (10) seconds: the sum of the forward steps of
//     currentTime, each capped at 1.5x the wall time between two samples, so a seek to the
//     live edge does not count as playing;
//   - hls.js raised no fatal error (every Hls instance the page makes is hooked: see
//     hookHls), the page's own error line for the card stays empty, the <video> fired no
//     'error' event and the page threw no uncaught exception;
//   - the video has a non-zero videoWidth and, where getVideoPlaybackQuality exists, decoded
//     frames.
// Otherwise exit 1, with each reason on stderr as "play_hls: FAIL: ...". Exit 2: bad usage.
// Either way one line of JSON on stdout sums it up (currentTime start/end, advance, frames,
// errors).
//
// Flags for a root run inside a network namespace: --headless=new --no-sandbox
// --autoplay-policy=no-user-gesture-required --mute-audio, no GPU.
import { chromium } from 'playwright-core';

const kSampleMs = 250;
const kStartTimeoutMs = 20000;  // page load + first playlist + first segments
const kHardTimeoutMs = 120000;   // the whole run, whatever happens

function usage(msg) {
  if (msg) process.stderr.write('play_hls: ' + msg + '\n');
  process.stderr.write('usage: play_hls.mjs <page-url> <channel-id> [--seconds N] [--min-advance N] ' +
                       '[--max-seconds N] [--screenshot FILE]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const out = { url: null, channel: null, seconds: 12, minAdvance: 10, maxSeconds: 20, screenshot: null, token: null,
                expectRefused: false };
  const pos = [];
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--seconds' || a === '--min-advance' || a === '--max-seconds') {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) usage(a + ' wants a positive number');
      if (a === '--seconds') out.seconds = v;
      else if (a === '--min-advance') out.minAdvance = v;
      else out.maxSeconds = v;
    } else if (a === '--token') {
      out.token = argv[++i];
      if (!out.token) usage('--token wants a token');
    } else if (a === '--expect-refused') {
      out.expectRefused = true;
    } else if (a === '--screenshot') {
      out.screenshot = argv[++i];
      if (!out.screenshot) usage('--screenshot wants a file');
    } else if (a.startsWith('--')) {
      usage('unknown option ' + a);
    } else {
      pos.push(a);
    }
  }
  if (pos.length !== 2) usage();
  [out.url, out.channel] = pos;
  if (out.token !== null) {
    out.url += (out.url.includes('?') ? '&' : '?') + 'channel=' + encodeURIComponent(out.channel) + '&token=' +
               encodeURIComponent(out.token);
  }
  out.maxSeconds = Math.max(out.maxSeconds, out.seconds);
  return out;
}

// Runs in the page once it loaded (hls.min.js and app.js are plain <script>s, so window.Hls
// exists and app.js has not made a player yet: it makes one per click on Play). Every Hls
// instance made from then on records its error events in window.__twincastTest; app.js
// itself is untouched.
function hookHls() {
  const t = { instances: 0, errors: [], videoErrors: [] };
  window.__twincastTest = t;
  if (!window.Hls) return false;
  const proto = window.Hls.prototype;
  const loadSource = proto.loadSource;
  proto.loadSource = function (url) {
    t.instances += 1;
    this.on(window.Hls.Events.ERROR, function (_event, data) {
      t.errors.push({ fatal: !!data.fatal, type: String(data.type), details: String(data.details),
                      at: performance.now() / 1000 });
    });
    return loadSource.call(this, url);
  };
  return true;
}

function sampleVideo(id) {
  const root = document.getElementById('channel-' + id);
  const v = root && root.querySelector('video');
  if (!v) return null;
  const q = typeof v.getVideoPlaybackQuality === 'function' ? v.getVideoPlaybackQuality() : null;
  return {
    t: v.currentTime, paused: v.paused, readyState: v.readyState, w: v.videoWidth, h: v.videoHeight,
    frames: q ? q.totalVideoFrames : null, dropped: q ? q.droppedVideoFrames : null,
    mediaError: v.error ? v.error.code + ' ' + v.error.message : null,
    pageError: root.querySelector('.error') ? root.querySelector('.error').textContent : '',
    button: root.querySelector('button') ? root.querySelector('button').textContent : '',
    hls: window.__twincastTest || null,
  };
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const summary = {
    ok: false, url: opt.url, channel: opt.channel, hlsjs: null, startupSeconds: null,
    currentTime: { start: null, end: null }, advanced: 0, sampledSeconds: 0, samples: 0, seeks: 0,
    videoWidth: 0, videoHeight: 0, frames: null, dropped: null, stalls: 0,
    errors: [], httpErrors: [], consoleErrors: [], pageErrors: [], videoErrors: [],
  };
  const failures = [];
  const hard = setTimeout(() => {
    failures.push('no result after ' + kHardTimeoutMs / 1000 + ' s');
    finish(summary, failures);
  }, kHardTimeoutMs);
  let browser = null, page = null;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      chromiumSandbox: false,
      args: ['--headless=new', '--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio',
             '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
      timeout: 30000,
    });
    page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') summary.consoleErrors.push(m.text()); });
    page.on('response', (r) => { if (r.status() >= 400) summary.httpErrors.push(r.status() + ' ' + r.url()); });
    page.on('pageerror', (e) => summary.pageErrors.push(String(e && e.message ? e.message : e)));
    await page.goto(opt.url, { waitUntil: 'load', timeout: 15000 });
    summary.hlsjs = await page.evaluate(() => (window.Hls ? String(window.Hls.version) : null));
    if (!(await page.evaluate(hookHls))) failures.push('window.Hls is missing: /static/hls.min.js did not load');

    // The card appears once app.js read /channels.json; then Play, by a mouse click.
    const card = page.locator('#channel-' + opt.channel);
    await card.waitFor({ state: 'visible', timeout: 10000 }).catch(() => {
      throw new Error('no card for channel "' + opt.channel + '" on the page (section#channel-' + opt.channel + ')');
    });
    await page.evaluate((id) => {
      const v = document.querySelector('#channel-' + id + ' video');
      window.__twincastTest.videoErrors = [];
      window.__twincastTest.stalls = 0;
      v.addEventListener('error', () => {
        window.__twincastTest.videoErrors.push(v.error ? v.error.code + ' ' + v.error.message : 'error');
      });
      v.addEventListener('waiting', () => { window.__twincastTest.stalls += 1; });
    }, opt.channel);
    const clicked = Date.now();
    await card.locator('button').click({ timeout: 5000 });

    // Playing: currentTime moved off its first value and the element is not paused.
    let s = await page.evaluate(sampleVideo, opt.channel);
    const t0 = s.t;
    while (Date.now() - clicked < kStartTimeoutMs) {
      s = await page.evaluate(sampleVideo, opt.channel);
      if ((s.hls && s.hls.errors.some((e) => e.fatal)) || s.mediaError) break;
      if (!s.paused && s.t > t0 && s.readyState >= 3) break;
      await page.waitForTimeout(100);
    }
    if (opt.expectRefused) {
      // Give hls.js time to give up (it may retry), then judge the refusal.
      while (Date.now() - clicked < kStartTimeoutMs && !(s.hls && s.hls.errors.some((e) => e.fatal) && s.pageError)) {
        await page.waitForTimeout(100);
        s = await page.evaluate(sampleVideo, opt.channel);
      }
      await page.waitForTimeout(2000);
      s = await page.evaluate(sampleVideo, opt.channel);
      summary.errors = s.hls ? s.hls.errors : [];
      summary.currentTime = { start: t0, end: s.t };
      summary.advanced = Math.max(0, s.t - t0);
      summary.refusedBy = summary.httpErrors.filter((e) => e.startsWith('403 ') && e.includes('/hls/' + opt.channel + '/'));
      summary.pageError = s.pageError;
      if (!summary.refusedBy.length) failures.push('the origin answered no 403 for /hls/' + opt.channel + '/');
      if (!summary.errors.some((e) => e.fatal)) failures.push('hls.js raised no fatal error');
      if (!s.pageError) failures.push('the page shows no error for the channel');
      if (summary.advanced > 0.5) failures.push('playback advanced ' + summary.advanced + ' s although refused');
      throw { refusedDone: true };
    }
    if (s.paused || s.t <= t0) {
      failures.push('the video did not start playing within ' + kStartTimeoutMs / 1000 + ' s of the click ' +
                    '(paused=' + s.paused + ' readyState=' + s.readyState + ' currentTime=' + s.t + ')');
    } else {
      summary.startupSeconds = (Date.now() - clicked) / 1000;
      // Sample for the window: playback = sum of forward steps, each at most 1.5x the wall step.
      const begin = Date.now();
      let prev = s, prevAt = begin;
      summary.currentTime.start = s.t;
      const more = () => Date.now() - begin < opt.seconds * 1000 ||
                         (summary.advanced < opt.minAdvance && Date.now() - begin < opt.maxSeconds * 1000);
      while (more()) {
        await page.waitForTimeout(kSampleMs);
        const now = Date.now();
        const cur = await page.evaluate(sampleVideo, opt.channel);
        const step = cur.t - prev.t, wall = (now - prevAt) / 1000;
        if (step > 0) summary.advanced += Math.min(step, 1.5 * wall);
        if (step > 1.5 * wall || step < 0) summary.seeks += 1;
        summary.samples += 1;
        prev = cur;
        prevAt = now;
        s = cur;
      }
      summary.sampledSeconds = (Date.now() - begin) / 1000;
      summary.currentTime.end = s.t;
    }
    summary.videoWidth = s.w;
    summary.videoHeight = s.h;
    summary.frames = s.frames;
    summary.dropped = s.dropped;
    const hooks = s.hls || { errors: [], videoErrors: [], stalls: 0, instances: 0 };
    summary.errors = hooks.errors;
    summary.videoErrors = hooks.videoErrors || [];
    summary.stalls = hooks.stalls || 0;

    if (summary.startupSeconds !== null && summary.advanced < opt.minAdvance) {
      failures.push('playback advanced ' + summary.advanced.toFixed(2) + ' s in ' + summary.sampledSeconds.toFixed(1) +
                    ' s, wanted >= ' + opt.minAdvance + ' s (currentTime ' + summary.currentTime.start + ' -> ' +
                    summary.currentTime.end + ', ' + summary.stalls + ' stalls)');
    }
    if (s.button !== 'Stop') failures.push('the Play button did not turn into Stop (it reads "' + s.button + '")');
    if (summary.hlsjs !== null && hooks.instances < 1) failures.push('the page made no hls.js player on Play');
    const fatal = summary.errors.filter((e) => e.fatal);
    if (fatal.length) failures.push('hls.js fatal error: ' + fatal.map((e) => e.type + ' ' + e.details).join(', '));
    if (s.pageError) failures.push('the page shows an error for the channel: ' + s.pageError);
    if (summary.videoErrors.length || s.mediaError) {
      failures.push('the <video> element failed: ' + (summary.videoErrors.join(', ') || s.mediaError));
    }
    if (summary.pageErrors.length) failures.push('uncaught exception in the page: ' + summary.pageErrors.join(' | '));
    if (!(s.w > 0)) failures.push('the video has no picture (videoWidth 0)');
    if (s.frames !== null && !(s.frames > 0)) failures.push('no video frame decoded (getVideoPlaybackQuality)');
  } catch (e) {
    if (!(e && e.refusedDone)) failures.push(String(e && e.message ? e.message.split('\n')[0] : e));
  }
  if (opt.screenshot && page) await page.screenshot({ path: opt.screenshot }).catch(() => {});
  clearTimeout(hard);
  if (browser) await browser.close().catch(() => {});
  finish(summary, failures);
}

function finish(summary, failures) {
  summary.ok = failures.length === 0;
  summary.advanced = Math.round(summary.advanced * 1000) / 1000;
  if (!summary.ok) summary.failures = failures;
  process.stdout.write(JSON.stringify(summary) + '\n');
  for (const f of failures) process.stderr.write('play_hls: FAIL: ' + f + '\n');
  process.exit(summary.ok ? 0 : 1);
}

main();
