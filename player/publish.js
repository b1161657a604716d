// The publish page, /publish: camera and microphone to the server over WHIP (RFC 9725), no software to install.
// H.264 is preferred (the server packages it as it comes, no re-encoding); Opus audio becomes AAC on the server.
// Talks to the server over HTTP only: POST /whip with the stream key, DELETE on the session URL to stop.
// window.__publisher exposes state and the last stats for tests and curious users.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const preview = $('preview');
  const form = $('form');
  const startBtn = $('start');
  const stopBtn = $('stop');
  const statusEl = $('status');
  const badge = $('badge');
  const query = new URLSearchParams(location.search);
  const state = { state: 'idle', location: null, pc: null, stream: null, stats: null, errors: [], codec: null };
  window.__publisher = state;
  if (query.get('key')) $('key').value = query.get('key');

  function setStatus(text, error) {
    statusEl.textContent = text;
    statusEl.classList.toggle('pub-error', Boolean(error));
  }
  function setState(s) {
    state.state = s;
    const live = s === 'live';
    badge.className = 'badge ' + (live ? 'live' : 'offline');
    badge.textContent = live ? 'LIVE' : s === 'connecting' ? 'CONNECTING' : 'OFFLINE';
    startBtn.disabled = s !== 'idle';
    stopBtn.disabled = s === 'idle';
    $('stats').hidden = s === 'idle';
  }

  async function listDevices() {
    try {
      const devices = await navigator.mediaDevices.enumerateDevices();
      for (const d of devices) {
        if (!d.deviceId || (d.kind !== 'videoinput' && d.kind !== 'audioinput')) continue;
        const sel = d.kind === 'videoinput' ? $('camera') : $('mic');
        if ([...sel.options].some((o) => o.value === d.deviceId)) continue;
        sel.add(new Option(d.label || d.kind + ' ' + sel.options.length, d.deviceId));
      }
    } catch (_) {
      /* labels come after permission; the defaults work anyway */
    }
  }

  /** ICE servers the server announces (RFC 9725 4.6: Link rel="ice-server"), asked with OPTIONS. */
  async function iceServers() {
    try {
      const res = await fetch('/whip', { method: 'OPTIONS' });
      const links = (res.headers.get('link') || '').split(/,\s*(?=<)/).filter(Boolean);
      return links.flatMap((l) => {
        const m = /^<([^>]+)>(.*)$/.exec(l.trim());
        if (!m || !/rel="ice-server"/.test(m[2])) return [];
        const user = /username="([^"]*)"/.exec(m[2]);
        const cred = /credential="([^"]*)"/.exec(m[2]);
        return [user ? { urls: m[1], username: user[1], credential: cred ? cred[1] : '' } : { urls: m[1] }];
      });
    } catch (_) {
      return [];
    }
  }

  /** H.264 with packetization-mode 1, constrained baseline first (what the server takes without re-encoding). */
  function h264First() {
    const codecs = ((RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities('video')) || { codecs: [] }).codecs;
    const h264 = codecs.filter((c) => /h264/i.test(c.mimeType) && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
    h264.sort((a, b) => rank(b) - rank(a));
    return h264;
    function rank(c) {
      return /42e0/.test(c.sdpFmtpLine) ? 3 : /4200/.test(c.sdpFmtpLine) ? 2 : 1;
    }
  }

  function waitForIce(pc, ms) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      const t = setTimeout(resolve, ms);
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(t);
          resolve();
        }
      });
    });
  }

  async function start() {
    const key = $('key').value.trim();
    if (!key) return setStatus('Enter the stream key.', true);
    setState('connecting');
    setStatus('Asking for the camera and microphone…');
    const [w, h] = $('resolution').value.split('x').map(Number);
    const camera = $('camera').value;
    const mic = $('mic').value;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: w }, height: { ideal: h }, frameRate: { ideal: 30 }, ...(camera ? { deviceId: { exact: camera } } : {}) },
        audio:
          mic === 'none'
            ? false
            : { ...(mic ? { deviceId: { exact: mic } } : {}), echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
      state.stream = stream;
      preview.srcObject = stream;
      listDevices();
      const codecs = h264First();
      if (codecs.length === 0) throw new Error('this browser cannot send H.264, which the server needs');
      const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', iceServers: await iceServers() });
      state.pc = pc;
      const bitrate = Math.max(300, Number($('bitrate').value) || 2500) * 1000;
      const vt = pc.addTransceiver(stream.getVideoTracks()[0], {
        direction: 'sendonly',
        sendEncodings: [{ maxBitrate: bitrate }],
        streams: [stream],
      });
      vt.setCodecPreferences(codecs);
      const audio = stream.getAudioTracks()[0];
      if (audio) pc.addTransceiver(audio, { direction: 'sendonly', streams: [stream] });
      pc.addEventListener('connectionstatechange', () => {
        const s = pc.connectionState;
        if (s === 'connected') {
          setState('live');
          setStatus('Live. Viewers see you a second or so from now.');
        } else if (s === 'failed') fail(new Error("the connection to the server failed (UDP blocked? see the server's WEBRTC_* settings)"));
        else if (s === 'disconnected') setStatus('Connection interrupted; trying to recover…');
      });
      await pc.setLocalDescription(await pc.createOffer());
      setStatus('Connecting…');
      // Candidates go in the offer (no trickle): one request, and servers behind proxies need no PATCH.
      await waitForIce(pc, 2000);
      const res = await fetch('/whip', {
        method: 'POST',
        headers: { 'content-type': 'application/sdp', authorization: 'Bearer ' + key },
        body: pc.localDescription.sdp,
      });
      if (res.status === 401) throw new Error('wrong stream key');
      if (res.status !== 201) {
        let msg = 'HTTP ' + res.status;
        try {
          msg = (await res.json()).error.message;
        } catch (_) {
          /* keep the status */
        }
        throw new Error('the server refused: ' + msg);
      }
      state.location = new URL(res.headers.get('location'), location.href).href;
      await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
      // Keep the resolution and let the frame rate give way when bandwidth or CPU run short: every change
      // of resolution is a new HLS init segment and a discontinuity for viewers.
      const send = vt.sender.getParameters();
      send.degradationPreference = 'maintain-resolution';
      await vt.sender.setParameters(send).catch(() => {});
      const params = vt.sender.getParameters();
      state.codec = (params.codecs && params.codecs[0] && params.codecs[0].sdpFmtpLine) || null;
      pollStats();
    } catch (err) {
      fail(err);
    }
  }

  function fail(err) {
    state.errors.push(String((err && err.message) || err));
    stop(false).then(() => setStatus('Could not go live: ' + ((err && err.message) || err), true));
  }

  async function stop(say = true) {
    const pc = state.pc;
    const loc = state.location;
    state.pc = null;
    state.location = null;
    if (loc) await fetch(loc, { method: 'DELETE' }).catch(() => {});
    if (pc) pc.close();
    if (state.stream) for (const t of state.stream.getTracks()) t.stop();
    state.stream = null;
    preview.srcObject = null;
    setState('idle');
    if (say) setStatus('Stopped. The stream ends for viewers after the reconnect grace (or continues if you go live again).');
  }

  let prev = null;
  async function pollStats() {
    const pc = state.pc;
    if (!pc) return;
    const report = await pc.getStats().catch(() => null);
    if (!report || state.pc !== pc) return;
    const s = { at: performance.now() };
    report.forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video')
        Object.assign(s, {
          bytes: r.bytesSent,
          width: r.frameWidth,
          height: r.frameHeight,
          fps: r.framesPerSecond,
          nacks: r.nackCount,
          plis: r.pliCount,
          firs: r.firCount,
          limit: r.qualityLimitationReason,
          encoder: r.encoderImplementation,
          framesEncoded: r.framesEncoded,
        });
      if (r.type === 'outbound-rtp' && r.kind === 'audio') s.audioBytes = r.bytesSent;
      if (r.type === 'remote-inbound-rtp' && r.kind === 'video')
        Object.assign(s, { lost: r.packetsLost, fractionLost: r.fractionLost, rtt: r.roundTripTime });
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded' && s.rtt === undefined) s.rtt = r.currentRoundTripTime;
    });
    if (prev && s.bytes !== undefined) s.kbps = Math.round(((s.bytes - prev.bytes) * 8) / (s.at - prev.at));
    if (prev && s.audioBytes !== undefined) s.audioKbps = Math.round(((s.audioBytes - prev.audioBytes) * 8) / (s.at - prev.at));
    prev = s;
    state.stats = s;
    $('s-state').textContent = pc.connectionState;
    $('s-video').textContent = s.width ? s.width + '×' + s.height + ' H.264' : '–';
    $('s-fps').textContent = s.fps !== undefined ? String(Math.round(s.fps)) : '–';
    $('s-bitrate').textContent = s.kbps !== undefined ? s.kbps + ' kb/s' : '–';
    $('s-audio').textContent = s.audioKbps !== undefined ? 'Opus ' + s.audioKbps + ' kb/s' : 'none';
    $('s-rtt').textContent = s.rtt !== undefined ? Math.round(s.rtt * 1000) + ' ms' : '–';
    $('s-lost').textContent =
      s.lost !== undefined ? s.lost + (s.fractionLost ? ' (' + (s.fractionLost * 100).toFixed(1) + ' %)' : '') : '–';
    $('s-fb').textContent = (s.nacks ?? 0) + ' / ' + (s.plis ?? 0);
    $('s-limit').textContent = s.limit || '–';
    $('s-encoder').textContent = s.encoder || '–';
    setTimeout(pollStats, 1000);
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (state.state === 'idle') start();
  });
  stopBtn.addEventListener('click', () => stop());
  window.addEventListener('pagehide', () => {
    if (state.location) fetch(state.location, { method: 'DELETE', keepalive: true }).catch(() => {});
  });
  listDevices();
})();
