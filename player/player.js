// The watch page, /watch/<id>. It first asks the API what <id> is:
//   - a VOD (a recording or an upload): plain hls.js, seekable with the native controls, title and description;
//   - a live run: hls.js in low-latency mode with a live badge, a latency readout and drift correction;
//   - not a video the API shows (404): <id> is a stream id, played at /live/<id>/master.m3u8 as always.
// `?token=<t>` plays private content through /t/<t>/vod/... or /t/<t>/live/... instead. Viewing beacons go to
// POST /api/v1/videos/<id>/watch every 10 s while playing and on pagehide.
// It talks to the server over HTTP only. window.__player exposes state for tests and curious users.
(function () {
  'use strict';
  const id = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
  const query = new URLSearchParams(location.search);
  const token = query.get('token');
  query.delete('token');
  const video = document.getElementById('video');
  const badge = document.getElementById('badge');
  const latencyEl = document.getElementById('latency');
  const quality = document.getElementById('quality');
  const statusEl = document.getElementById('status');
  const stats = { viewerId: randomId(), startupMs: null, rebuffers: 0, rebufferMs: 0, bitrateKbps: null, beacons: 0 };
  const state = {
    id,
    kind: null,
    info: null,
    subject: null,
    src: null,
    ended: false,
    errors: [],
    latency: null,
    level: -1,
    hls: null,
    video,
    stats,
  };
  window.__player = state;

  function setStatus(text) {
    statusEl.textContent = text;
  }
  function setBadge(kind, text) {
    badge.className = 'badge ' + kind;
    badge.textContent = text;
  }
  function randomId() {
    // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  document.getElementById('unmute').addEventListener('click', () => {
    video.muted = false;
    video.play().catch(() => {});
  });

  // ---- What is <id>? -------------------------------------------------------------------------------------

  const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/;

  /**
   * The URL to play from the API's playback URL: used as given (it may name a CDN), except one on a loopback
   * host while this page came from elsewhere (the default PUBLIC_BASE_URL, http://localhost:PORT), which is
   * the same path here. With a token, /t/<token> goes in front of /vod/ or /live/.
   */
  function playbackUrl(given) {
    let u = new URL(given, location.href);
    if (u.origin !== location.origin && LOOPBACK.test(u.hostname)) u = new URL(u.pathname + u.search, location.origin);
    if (token) u.pathname = u.pathname.replace(/\/(vod|live)\/(?=[^/]+\/master\.m3u8$)/, '/t/' + encodeURIComponent(token) + '/$1/');
    query.forEach((v, k) => {
      if (!u.searchParams.has(k)) u.searchParams.set(k, v);
    });
    return u.origin === location.origin ? u.pathname + u.search : u.href;
  }
  const pathUrl = (kind, of) => playbackUrl('/' + kind + '/' + encodeURIComponent(of) + '/master.m3u8');
  // A playback token names what it opens: `<v|s>.<id>.<expiry>.<signature>`, v a VOD asset, s a live stream.
  const tokenSubject = token ? /^([vs])\.([A-Za-z0-9_-]{1,64})\.\d+\./.exec(token) : null;

  /** GET /api/v1/videos/<id>: the video, or null when the API does not show one (any 4xx). Retries 5xx. */
  async function lookup() {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch('/api/v1/videos/' + encodeURIComponent(id), { headers: { accept: 'application/json' } });
        if (res.ok) return await res.json();
        if (res.status < 500) return null;
      } catch (_) {
        /* network error: retry below */
      }
      if (attempt >= 3) return null;
      setStatus('cannot reach the server, retrying…');
      await new Promise((r) => setTimeout(r, 2000 * attempt));
    }
  }

  async function resolve() {
    const info = await lookup();
    if (info && (info.type === 'vod' || info.type === 'live')) {
      state.info = info;
      showMeta(info);
      const given = info.playback && info.playback.hls;
      if (info.type === 'live') {
        if (given) return play('live', playbackUrl(given));
        if (info.streamId) return play('live', pathUrl('live', info.streamId)); // ended: waits for the stream's next run
        setStatus('This live stream has ended.');
        return;
      }
      if (info.status === 'ready') return play('vod', given ? playbackUrl(given) : pathUrl('vod', info.id));
      if (info.status === 'failed') {
        setStatus('This video failed to process' + (info.error ? ': ' + info.error : '') + '.');
        return;
      }
      setStatus('This video is ' + info.status + (info.progress ? ' (' + info.progress + ' %)' : '') + '; it plays once ready.');
      setTimeout(resolve, 5000);
      return;
    }
    // Private content is hidden from the API without the operator token; a playback token still plays it.
    if (tokenSubject) {
      state.subject = tokenSubject[2];
      return play(tokenSubject[1] === 'v' ? 'vod' : 'live', pathUrl(tokenSubject[1] === 'v' ? 'vod' : 'live', tokenSubject[2]));
    }
    if (token) {
      const vod = pathUrl('vod', id);
      const res = await fetch(vod).catch(() => null);
      if (res && res.ok) return play('vod', vod);
    }
    play('live', pathUrl('live', id));
  }

  function showMeta(info) {
    const title = document.getElementById('title');
    const description = document.getElementById('description');
    title.textContent = info.title || '';
    title.hidden = !info.title;
    description.textContent = info.description || '';
    description.hidden = !info.description;
    if (info.title) document.title = info.title + ' — livepack';
  }

  // ---- Playback ------------------------------------------------------------------------------------------

  let retryTimer = null;

  function play(kind, src) {
    state.kind = kind;
    state.src = src;
    document.body.classList.add(kind);
    if (!window.Hls || !window.Hls.isSupported()) {
      if (video.canPlayType('application/vnd.apple.mpegurl')) {
        video.src = src; // Safari plays (LL-)HLS natively
        setStatus('native HLS');
      } else {
        setStatus('This browser cannot play HLS (no Media Source Extensions).');
      }
      return;
    }
    start();
  }

  function liveConfig() {
    return {
      lowLatencyMode: true,
      backBufferLength: 30,
      // hls.js only speeds up with more than 1 s buffered, which a 0.6 s target never has; the player
      // does its own gentle catch-up below, so hls.js's is left off.
      maxLiveSyncPlaybackRate: 1,
      manifestLoadingMaxRetry: 6,
      levelLoadingMaxRetry: 6,
    };
  }

  function start() {
    const live = state.kind === 'live';
    const hls = new window.Hls(live ? liveConfig() : { lowLatencyMode: false });
    state.hls = hls;
    hls.loadSource(state.src);
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
    hls.on(window.Hls.Events.LEVEL_SWITCHED, (_e, data) => {
      state.level = data.level;
    });
    hls.on(window.Hls.Events.LEVEL_UPDATED, (_e, data) => {
      if (!live || data.details.live || state.ended) return;
      state.ended = true;
      setBadge('ended', 'ENDED');
      setStatus('the stream has ended');
      offerRecording();
      awaitNextRun();
    });
    hls.on(window.Hls.Events.ERROR, (_e, data) => {
      state.errors.push({ type: data.type, details: data.details, fatal: data.fatal });
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      clearTimeout(retryTimer);
      if (!live) {
        // A VOD keeps its position: load again from where it stopped.
        setStatus('cannot load the video, retrying…');
        retryTimer = setTimeout(() => {
          if (hls.levels && hls.levels.length) hls.startLoad(video.currentTime);
          else hls.loadSource(state.src);
        }, 3000);
        return;
      }
      setBadge('offline', 'OFFLINE');
      setStatus('waiting for the stream…');
      hls.destroy();
      state.hls = null;
      retryTimer = setTimeout(start, 3000);
    });
  }

  /**
   * A recorded live run becomes a VOD at the same video id a few seconds after it ends: offer it once ready.
   * Opened by stream id, the recording is the stream's newest VOD that ended while this page was open.
   */
  const openedAt = Date.now();
  async function recordingOf() {
    const viaStream = !state.info;
    const url = viaStream
      ? '/api/v1/videos?type=vod&limit=1&streamId=' + encodeURIComponent(id)
      : '/api/v1/videos/' + encodeURIComponent(state.info.id);
    const res = await fetch(url, { headers: { accept: 'application/json' } }).catch(() => null);
    if (!res) return undefined;
    if (res.status === 404) return null; // a run that was not recorded is gone
    const body = res.ok ? await res.json().catch(() => null) : null;
    const v = viaStream ? body && body.items && body.items[0] : body;
    if (!v || v.type !== 'vod' || (viaStream && !(Date.parse(v.endedAt) >= openedAt))) return undefined;
    return v.status === 'failed' ? null : v;
  }
  function offerRecording() {
    if (token) return;
    let tries = 0;
    const check = async () => {
      const v = await recordingOf();
      if (v && v.status === 'ready') {
        const a = document.createElement('a');
        a.href = '/watch/' + encodeURIComponent(v.id);
        a.textContent = 'watch the recording';
        statusEl.replaceChildren('the stream has ended; ', a);
      } else if (v !== null && ++tries < 40) {
        setTimeout(check, 3000);
      }
    };
    setTimeout(check, 1000);
  }

  /**
   * Opened by stream id, the page follows the stream: when the broadcaster goes live again after a stop
   * (a new run, with playlists of its own), it plays that run, without a reload. A run has ended while
   * its media playlist carries EXT-X-ENDLIST; the next one's does not.
   */
  let nextRunTimer = null;
  function awaitNextRun() {
    const byStream = state.src === pathUrl('live', id) || (state.info && state.info.streamId === id && state.info.type === 'live');
    if (!byStream) return;
    clearTimeout(nextRunTimer);
    const check = async () => {
      try {
        const master = await fetch(state.src, { cache: 'no-store' });
        if (master.ok) {
          const uri = (await master.text()).split('\n').find((l) => l && !l.startsWith('#'));
          const media = uri ? await fetch(new URL(uri, new URL(state.src, location.href)), { cache: 'no-store' }) : null;
          if (media && media.ok && !(await media.text()).includes('#EXT-X-ENDLIST')) {
            state.ended = false;
            setBadge('live', 'LIVE');
            setStatus('the stream is live again');
            if (state.hls) state.hls.destroy();
            state.hls = null;
            start();
            return;
          }
        }
      } catch (_) {
        /* not reachable now: try again */
      }
      nextRunTimer = setTimeout(check, 2000);
    };
    nextRunTimer = setTimeout(check, 2000);
  }

  video.addEventListener('ended', () => {
    if (state.kind === 'vod') setStatus('ended');
  });

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
    if (!hls || state.ended || state.kind !== 'live') return;
    steer(hls);
    const pdt = hls.playingDate;
    if (pdt && !video.paused) {
      state.latency = (Date.now() - pdt.getTime()) / 1000;
      latencyEl.textContent = 'latency ' + state.latency.toFixed(2) + ' s';
      const behind = hls.targetLatency ? state.latency > hls.targetLatency + 3 : false;
      setBadge(behind ? 'behind' : 'live', behind ? 'BEHIND' : 'LIVE');
    }
  }, 250);

  // ---- Quality of experience and viewing beacons ---------------------------------------------------------

  // startupMs runs from the start of the page load (performance.now()'s origin) to the first 'playing'. A
  // rebuffer is a 'waiting' after that, not caused by a seek, until the next 'playing'.
  let stallStart = 0;
  video.addEventListener('playing', () => {
    const now = performance.now();
    if (stats.startupMs === null) stats.startupMs = Math.round(now);
    if (stallStart) {
      stats.rebuffers++;
      stats.rebufferMs += Math.round(now - stallStart);
      stallStart = 0;
    }
  });
  video.addEventListener('waiting', () => {
    if (stats.startupMs !== null && !video.seeking && !stallStart) stallStart = performance.now();
  });
  video.addEventListener('seeking', () => {
    stallStart = 0;
  });

  /** The video the beacons are about, once it is being played: the API's, or the id of a VOD found through a token. */
  function beaconVideoId() {
    if (!state.kind) return null;
    if (state.info) return state.info.id;
    return state.kind === 'vod' ? state.subject || id : null;
  }

  function beacon() {
    const videoId = beaconVideoId();
    if (!videoId) return;
    const hls = state.hls;
    const level = hls && hls.levels && hls.currentLevel >= 0 ? hls.levels[hls.currentLevel] : null;
    if (level && level.bitrate) stats.bitrateKbps = Math.round(level.bitrate / 1000);
    const body = { viewerId: stats.viewerId, position: Math.max(0, Math.round(video.currentTime * 1000) / 1000) };
    if (stats.startupMs !== null) body.startupMs = stats.startupMs;
    body.rebuffers = stats.rebuffers;
    body.rebufferMs = stats.rebufferMs + (stallStart ? Math.round(performance.now() - stallStart) : 0);
    if (stats.bitrateKbps !== null) body.bitrateKbps = stats.bitrateKbps;
    // A private video's beacons carry the playback token it plays with (the server refuses them otherwise).
    if (token) body.token = token;
    const url = '/api/v1/videos/' + encodeURIComponent(videoId) + '/watch';
    const json = JSON.stringify(body);
    let queued = false;
    try {
      queued = typeof navigator.sendBeacon === 'function' && navigator.sendBeacon(url, new Blob([json], { type: 'application/json' }));
    } catch (_) {
      /* fall back to fetch below */
    }
    if (!queued)
      fetch(url, { method: 'POST', body: json, headers: { 'content-type': 'application/json' }, keepalive: true }).catch(() => {});
    stats.beacons++;
  }

  setInterval(() => {
    if (stats.startupMs !== null && !video.paused) beacon();
  }, 10_000);
  addEventListener('pagehide', beacon);

  resolve();
})();
