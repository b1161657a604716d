// The watch page: hls.js in low-latency mode, a quality menu, a live badge and a latency readout.
// It talks to the server over HTTP only. window.__player exposes state for tests and curious users.
(function () {
  'use strict';
  const id = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
  const src = '/live/' + encodeURIComponent(id) + '/master.m3u8' + location.search;
  const video = document.getElementById('video');
  const badge = document.getElementById('badge');
  const latencyEl = document.getElementById('latency');
  const quality = document.getElementById('quality');
  const statusEl = document.getElementById('status');
  const state = { id, src, ended: false, errors: [], latency: null, level: -1, hls: null, video };
  window.__player = state;

  function setStatus(text) { statusEl.textContent = text; }
  function setBadge(kind, text) { badge.className = 'badge ' + kind; badge.textContent = text; }

  document.getElementById('unmute').addEventListener('click', () => { video.muted = false; video.play().catch(() => {}); });

  if (!window.Hls || !window.Hls.isSupported()) {
    if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = src; // Safari plays LL-HLS natively
      setStatus('native HLS');
    } else {
      setStatus('This browser cannot play HLS (no Media Source Extensions).');
    }
    return;
  }

  let retryTimer = null;
  function start() {
    const hls = new window.Hls({
      lowLatencyMode: true,
      backBufferLength: 30,
      // hls.js only speeds up with more than 1 s buffered, which a 0.6 s target never has; the player
      // does its own gentle catch-up below, so hls.js's is left off.
      maxLiveSyncPlaybackRate: 1,
      manifestLoadingMaxRetry: 6,
      levelLoadingMaxRetry: 6,
    });
    state.hls = hls;
    hls.loadSource(src);
    hls.attachMedia(video);
    hls.on(window.Hls.Events.MANIFEST_PARSED, (_e, data) => {
      quality.length = 1;
      data.levels.forEach((l, i) => {
        const opt = document.createElement('option');
        opt.value = String(i);
        opt.textContent = (l.height ? l.height + 'p' : l.name || 'level ' + i) + ' · ' + Math.round(l.bitrate / 1000) + ' kb/s';
        quality.appendChild(opt);
      });
      setStatus('playing ' + data.levels.length + ' rendition(s)');
      video.play().catch(() => setStatus('press play'));
    });
    hls.on(window.Hls.Events.LEVEL_SWITCHED, (_e, data) => { state.level = data.level; });
    hls.on(window.Hls.Events.LEVEL_UPDATED, (_e, data) => {
      if (!data.details.live) { state.ended = true; setBadge('ended', 'ENDED'); setStatus('the stream has ended'); }
    });
    hls.on(window.Hls.Events.ERROR, (_e, data) => {
      state.errors.push({ type: data.type, details: data.details, fatal: data.fatal });
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) { hls.recoverMediaError(); return; }
      setBadge('offline', 'OFFLINE');
      setStatus('waiting for the stream…');
      hls.destroy();
      state.hls = null;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(start, 3000);
    });
  }

  quality.addEventListener('change', () => {
    // loadLevel, not currentLevel: what is buffered plays out and the next part comes from the chosen
    // rung (aligned segment for segment), instead of flushing the buffer and stalling to refill it.
    if (state.hls) state.hls.loadLevel = Number(quality.value);
  });
  document.getElementById('golive').addEventListener('click', () => {
    if (state.hls && state.hls.liveSyncPosition) video.currentTime = state.hls.liveSyncPosition;
  });

  // Drift correction: play slightly faster while more than 150 ms behind hls.js's target latency
  // (PART-HOLD-BACK) with enough buffered to spare; back to normal speed near the target or on a thin buffer.
  const CATCH_UP_RATE = 1.08;
  function steer(hls) {
    const target = hls.targetLatency;
    const latency = hls.latency;
    if (!target || !latency || video.paused || !video.buffered.length) return;
    const ahead = video.buffered.end(video.buffered.length - 1) - video.currentTime;
    const behind = latency - target;
    if (behind > 0.15 && ahead > 0.35) video.playbackRate = CATCH_UP_RATE;
    else if (behind < 0.05 || ahead < 0.2) video.playbackRate = 1;
    state.playbackRate = video.playbackRate;
  }

  setInterval(() => {
    const hls = state.hls;
    if (!hls || state.ended) return;
    steer(hls);
    const pdt = hls.playingDate;
    if (pdt && !video.paused) {
      state.latency = (Date.now() - pdt.getTime()) / 1000;
      latencyEl.textContent = 'latency ' + state.latency.toFixed(2) + ' s';
      const behind = hls.targetLatency ? state.latency > hls.targetLatency + 3 : false;
      setBadge(behind ? 'behind' : 'live', behind ? 'BEHIND' : 'LIVE');
    }
  }, 250);

  start();
})();
