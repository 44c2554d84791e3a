// The trace as a timeline: one track per pid, each syscall a slice from its start for its
// duration. The server sends at most a bounded number of slices (merged into time bins when
// there are more); zooming into a merged view asks again for the narrower window.
// Zoom: the buttons, Ctrl + wheel or a pinch; pan: drag, or the wheel sideways.
(function () {
  "use strict";
  const section = document.getElementById("timeline");
  const live = document.getElementById("run-live");
  if (!section || !live) return;
  const canvas = section.querySelector("canvas");
  const box = section.querySelector(".timeline-box");
  const info = section.querySelector(".timeline-info");
  const tip = section.querySelector(".timeline-tip");
  const ctx = canvas.getContext("2d");
  const LANE_PX = 30; // a label line above a 16 px row of slices
  const AXIS_PX = 22;
  const COLORS = ["#1a56db", "#0f766e", "#9333ea", "#ca8a04", "#e8590c", "#0891b2", "#4d7c0f", "#be185d"];

  let data = null; // the last response
  let view = null; // [start_s, end_s] shown
  let byTrack = []; // slices per track, sorted by start
  let loading = false;
  let refetch = null;

  function fmt(s) {
    const a = Math.abs(s);
    if (a >= 1) return s.toFixed(3) + " s";
    if (a >= 1e-3) return (s * 1e3).toFixed(3) + " ms";
    return (s * 1e6).toFixed(1) + " µs";
  }

  async function load(start, end) {
    if (loading) return;
    loading = true;
    const url = new URL(section.dataset.url, location.href);
    if (start != null) url.searchParams.set("start", String(start));
    if (end != null) url.searchParams.set("end", String(end));
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(response.status + " " + response.statusText);
      data = await response.json();
    } catch (err) {
      info.textContent = "The timeline could not be loaded: " + err.message;
      loading = false;
      return;
    }
    loading = false;
    byTrack = data.tracks.map(() => []);
    for (const s of data.slices) byTrack[s[0]].push(s);
    if (!view) view = data.span[1] > data.span[0] ? [data.span[0], data.span[1]] : [0, 1e-3];
    section.dataset.tracks = String(data.tracks.length);
    section.dataset.pids = data.tracks.map((t) => t.pid).join(",");
    section.dataset.loaded = "1";
    draw();
  }

  function x(t, width) {
    return ((t - view[0]) / (view[1] - view[0])) * width;
  }

  function niceStep(span, ticks) {
    const raw = span / ticks;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
    return 10 * p;
  }

  function draw() {
    if (!data) return;
    const width = Math.max(100, box.clientWidth);
    const height = AXIS_PX + LANE_PX * Math.max(1, data.tracks.length);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr;
    canvas.height = height * dpr;
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";

    // Time axis, relative to the trace's first event.
    const step = niceStep(view[1] - view[0], Math.max(2, Math.floor(width / 90)));
    ctx.fillStyle = "#667085";
    ctx.strokeStyle = "#e3e6ec";
    for (let t = Math.ceil(view[0] / step) * step; t <= view[1]; t += step) {
      const px = Math.round(x(t, width)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(px, AXIS_PX - 4);
      ctx.lineTo(px, height);
      ctx.stroke();
      ctx.fillText((t < 0 ? "−" : "+") + fmt(Math.abs(t)), px + 2, 12);
    }

    data.tracks.forEach((track, i) => {
      const top = AXIS_PX + i * LANE_PX;
      ctx.fillStyle = "#1d2330";
      ctx.fillText(track.label + " · " + track.calls.toLocaleString() + " calls", 4, top + 11);
      ctx.fillStyle = "#f1f3f6";
      ctx.fillRect(0, top + 13, width, 16);
      let lastPx = -1;
      for (const s of byTrack[i]) {
        const end = s[1] + s[2];
        if (end < view[0] || s[1] > view[1]) continue;
        const left = Math.max(0, x(s[1], width));
        const w = Math.max(1, Math.min(width, x(end, width)) - left);
        // Many calls in one pixel column draw once: a million slices stay cheap.
        if (w <= 1 && Math.floor(left) === lastPx) continue;
        lastPx = Math.floor(left);
        ctx.fillStyle = s[4] ? "#b3261e" : COLORS[s[3] % COLORS.length];
        ctx.globalAlpha = s[5] > 1 ? 0.55 : 1;
        ctx.fillRect(left, top + 13, w, 16);
        if (w > 40) {
          ctx.globalAlpha = 1;
          ctx.fillStyle = "#fff";
          ctx.fillText(data.names[s[3]] + (s[5] > 1 ? " ×" + s[5] : ""), left + 3, top + 25, w - 6);
        }
      }
      ctx.globalAlpha = 1;
    });

    const shown = data.slices.length.toLocaleString();
    info.textContent =
      fmt(view[1] - view[0]) + " shown · " + data.calls_in_window.toLocaleString() + " calls in the loaded window" +
      (data.merged ? "; " + shown + " merged slices (zoom in for single calls)" : "");
  }

  function zoom(factor, centerFrac) {
    if (!view) return;
    const span = view[1] - view[0];
    const next = Math.max(1e-7, span * factor);
    const center = view[0] + span * (centerFrac ?? 0.5);
    view = [center - next * (centerFrac ?? 0.5), center + next * (1 - (centerFrac ?? 0.5))];
    changed();
  }

  function pan(fraction) {
    const span = view[1] - view[0];
    view = [view[0] + span * fraction, view[1] + span * fraction];
    changed();
  }

  // A merged answer, or a view outside the loaded window, is asked for again once the
  // person stops moving.
  function changed() {
    draw();
    clearTimeout(refetch);
    const [w0, w1] = data ? data.window : [0, 0];
    const outside = view[0] < w0 || view[1] > w1;
    const narrower = data && data.merged && view[1] - view[0] < (w1 - w0) / 2;
    if (outside || narrower) {
      refetch = setTimeout(() => {
        const margin = (view[1] - view[0]) / 2;
        load(view[0] - margin, view[1] + margin);
      }, 250);
    }
  }

  function sliceAt(px, py) {
    if (!data) return null;
    const i = Math.floor((py - AXIS_PX) / LANE_PX);
    if (i < 0 || i >= byTrack.length) return null;
    const width = box.clientWidth;
    const t = view[0] + (px / width) * (view[1] - view[0]);
    const slack = (3 / width) * (view[1] - view[0]);
    let best = null;
    for (const s of byTrack[i]) {
      if (s[1] - slack <= t && t <= s[1] + s[2] + slack) best = s;
      if (s[1] > t + slack) break;
    }
    return best && [i, best];
  }

  section.querySelector("[data-zoom=in]").addEventListener("click", () => zoom(0.5));
  section.querySelector("[data-zoom=out]").addEventListener("click", () => zoom(2));
  section.querySelector("[data-zoom=reset]").addEventListener("click", () => {
    view = [data.span[0], data.span[1]];
    changed();
  });

  canvas.addEventListener(
    "wheel",
    (evt) => {
      if (!view) return;
      const frac = evt.offsetX / box.clientWidth;
      if (evt.ctrlKey) {
        evt.preventDefault();
        zoom(evt.deltaY > 0 ? 1.25 : 0.8, frac);
      } else if (Math.abs(evt.deltaX) > Math.abs(evt.deltaY)) {
        evt.preventDefault();
        pan(evt.deltaX / box.clientWidth);
      }
    },
    { passive: false }
  );

  let drag = null;
  canvas.addEventListener("pointerdown", (evt) => {
    drag = { x: evt.clientX, view: view && view.slice() };
    canvas.setPointerCapture(evt.pointerId);
  });
  canvas.addEventListener("pointerup", () => (drag = null));
  canvas.addEventListener("pointermove", (evt) => {
    if (drag && drag.view) {
      const span = drag.view[1] - drag.view[0];
      const shift = ((evt.clientX - drag.x) / box.clientWidth) * span;
      view = [drag.view[0] - shift, drag.view[1] - shift];
      changed();
      return;
    }
    const hit = sliceAt(evt.offsetX, evt.offsetY);
    if (!hit) {
      tip.textContent = "";
      return;
    }
    const [i, s] = hit;
    const what = s[5] > 1 ? s[5] + " calls merged, the longest " + data.names[s[3]] : data.names[s[3]];
    tip.textContent =
      data.tracks[i].label + " · " + what + " · +" + fmt(s[1]) + " for " + fmt(s[2]) + (s[4] ? " · failed" : "");
  });

  new ResizeObserver(draw).observe(box);

  // The timeline comes from stored events: load it once the traced pass is over.
  if (section.dataset.ready === "1") load();
  live.addEventListener("sysops:frame", (evt) => {
    const frame = evt.detail;
    const status = frame.kind === "trace" && frame.state && frame.state.status;
    if ((status === "done" || status === "cut") && !data) load();
    if (status === "failed" || status === "unavailable") info.textContent = "No timeline: this run has no trace (see above).";
  });
})();
