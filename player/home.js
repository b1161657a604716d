// The home page, /: the catalog (loaded from here, not inline: the page CSP allows no inline script). Public
// videos only (the API lists no others without the operator token). Every text from the API goes in through
// textContent or an attribute, never as HTML.
(function () {
  'use strict';
  const LIVE_REFRESH_MS = 10000;
  const PAGE = 24;
  const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/;

  /** The API's media URL, or the same path here when it names a loopback host this page was not loaded from. */
  function mediaUrl(given) {
    try {
      const u = new URL(given, location.href);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
      if (u.origin !== location.origin && LOOPBACK.test(u.hostname)) return u.pathname + u.search;
      return u.href;
    } catch (_) {
      return null;
    }
  }

  /** Seconds as m:ss, or h:mm:ss from an hour on. */
  function formatDuration(s) {
    const t = Math.max(0, Math.round(s));
    const h = Math.floor(t / 3600);
    const m = Math.floor((t % 3600) / 60);
    const ss = String(t % 60).padStart(2, '0');
    return h > 0 ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** Live thumbnails are cut about every LIVE_REFRESH_MS: one URL per period, so no cache serves an old one. */
  function livePeriod() {
    return String(Math.floor(Date.now() / LIVE_REFRESH_MS));
  }
  function liveThumbUrl(url, period) {
    return url + (url.includes('?') ? '&' : '?') + 't=' + period;
  }

  /** The new image of each live card is loaded beside the old one and swapped in once there (no flash; a failed one keeps the old). */
  function refreshLiveThumbs(root) {
    const period = livePeriod();
    for (const img of root.querySelectorAll('img[data-live]')) {
      if (img.dataset.period === period) continue;
      img.dataset.period = period;
      const next = liveThumbUrl(img.dataset.live, period);
      const pre = new Image();
      pre.addEventListener('load', () => {
        img.src = next;
      });
      pre.src = next;
    }
  }

  function card(v) {
    const li = el('li', 'card');
    li.dataset.id = v.id;
    const a = el('a');
    a.href = '/watch/' + encodeURIComponent(v.id);
    const thumb = el('div', 'thumb');
    const poster = v.thumbnailUrl ? mediaUrl(v.thumbnailUrl) : null;
    if (poster) {
      const img = el('img');
      img.alt = '';
      img.loading = 'lazy';
      img.decoding = 'async';
      img.addEventListener('error', () => img.remove()); // the placeholder behind it shows instead
      if (v.type === 'live') {
        img.dataset.live = poster;
        img.dataset.period = livePeriod();
        img.src = liveThumbUrl(poster, img.dataset.period);
      } else img.src = poster;
      thumb.appendChild(img);
    }
    if (v.type === 'live') thumb.appendChild(el('span', 'badge live', 'LIVE'));
    else if (typeof v.duration === 'number') thumb.appendChild(el('span', 'duration', formatDuration(v.duration)));
    a.appendChild(thumb);
    a.appendChild(el('h3', 'card-title', v.title || 'Untitled'));
    const when = new Date(v.type === 'live' ? v.createdAt : v.endedAt || v.createdAt);
    if (!Number.isNaN(when.getTime())) {
      const time = el(
        'time',
        'card-date',
        v.type === 'live' ? 'started ' + when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : when.toLocaleDateString(),
      );
      time.dateTime = when.toISOString();
      a.appendChild(time);
    }
    li.appendChild(a);
    return li;
  }

  async function getJson(path) {
    const res = await fetch(path, { headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    return res.json();
  }

  /** One section of cards; `render` replaces them unless nothing shown changed (no flicker on refresh). */
  function shelf(sectionId, emptyText) {
    const section = document.getElementById(sectionId);
    const list = section.querySelector('.grid');
    const note = section.querySelector('.empty');
    let shown = '';
    return {
      section,
      render(items, append) {
        const key = JSON.stringify(items.map((v) => [v.id, v.title, v.thumbnailUrl, v.duration, v.status]));
        if (!append && key === shown) return;
        shown = append ? shown + key : key;
        if (!append) list.replaceChildren();
        for (const v of items) list.appendChild(card(v));
        note.textContent = list.children.length ? '' : emptyText;
        note.hidden = list.children.length > 0;
      },
      fail(err) {
        note.hidden = false;
        note.textContent = 'Could not load this list (' + err.message + ').';
      },
    };
  }

  const live = shelf('live', 'No one is live right now.');
  const library = shelf('library', 'No videos yet. Recorded streams and uploads appear here once processed.');
  const results = shelf('results', 'Nothing matches.');

  async function loadLive() {
    try {
      const page = await getJson('/api/v1/videos?type=live&status=live&limit=' + PAGE);
      live.render(page.items, false);
      refreshLiveThumbs(live.section);
    } catch (err) {
      live.fail(err);
    }
  }

  let cursor = null;
  const more = document.getElementById('more');
  async function loadLibrary(append) {
    more.disabled = true;
    try {
      const q = new URLSearchParams({ type: 'vod', status: 'ready', limit: String(PAGE) });
      if (append && cursor) q.set('cursor', cursor);
      const page = await getJson('/api/v1/videos?' + q);
      library.render(page.items, append);
      cursor = page.nextCursor;
      more.hidden = !cursor;
    } catch (err) {
      library.fail(err);
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', () => loadLibrary(true));

  // Search as one types (after a pause) and on submit; only the newest answer is shown.
  const input = document.getElementById('q');
  let searchSeq = 0;
  let searchTimer = null;
  async function search() {
    clearTimeout(searchTimer);
    const q = input.value.trim();
    const seq = ++searchSeq;
    if (!q) {
      results.section.hidden = true;
      return;
    }
    results.section.hidden = false;
    try {
      const page = await getJson('/api/v1/search?' + new URLSearchParams({ q, limit: String(PAGE) }));
      if (seq === searchSeq) results.render(page.items, false);
    } catch (err) {
      if (seq === searchSeq) results.fail(err);
    }
  }
  input.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 300);
  });
  document.getElementById('search').addEventListener('submit', (e) => {
    e.preventDefault();
    search();
  });

  document.getElementById('watch').addEventListener('submit', (e) => {
    e.preventDefault();
    location.href = '/watch/' + encodeURIComponent(document.getElementById('streamId').value.trim());
  });

  loadLive();
  loadLibrary(false);
  setInterval(() => {
    if (!document.hidden) loadLive();
  }, LIVE_REFRESH_MS);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) loadLive();
  });
})();
