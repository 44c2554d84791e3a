// Live charts of a run. The websocket carries HTML frames (htmx swaps them by id) and JSON
// frames with samples: a "snapshot" (everything so far) then "samples" batches. Charts redraw at
// most once per animation frame, however fast batches arrive.
(function () {
  "use strict";
  const COLORS = ["#1a56db", "#e8590c", "#0f766e", "#9333ea", "#b3261e", "#ca8a04"];
  const specEl = document.getElementById("charts-spec");
  const live = document.getElementById("run-live");
  if (!specEl || !live) return;
  const MAX_LOG_LINES = Number(live.dataset.maxLogLines); // the server's LOG_LINES_SHOWN

  const charts = JSON.parse(specEl.textContent).map((spec) => ({
    spec,
    rows: new Map(), // x -> array of y per series
    plot: null,
  }));
  const chartOfSeries = new Map();
  charts.forEach((chart) => chart.spec.series.forEach((s, i) => chartOfSeries.set(s, [chart, i])));

  function makePlot(chart) {
    const el = document.getElementById("chart-" + chart.spec.id);
    const width = Math.max(320, el.clientWidth - 16);
    const series = [{ label: chart.spec.x_label }].concat(
      chart.spec.series.map((name, i) => ({
        label: (chart.spec.labels || {})[name] || name,
        stroke: COLORS[i % COLORS.length],
        spanGaps: true,
        paths: chart.spec.points ? () => null : undefined,
        points: chart.spec.points ? { show: true, size: 5, fill: COLORS[i % COLORS.length] } : { show: false },
      }))
    );
    return new uPlot(
      {
        width,
        height: 280,
        scales: {
          x: chart.spec.x_log ? { time: false, distr: 3 } : { time: false },
          y: chart.spec.y_log ? { distr: 3 } : {},
        },
        axes: [{ label: chart.spec.x_label }, { label: chart.spec.y_label, size: 70 }],
        series,
        hooks: { draw: [(u) => drawMarks(u, chart.spec.x_marks || [])] },
      },
      [[]].concat(chart.spec.series.map(() => [])),
      el
    );
  }

  // Vertical lines at marked x values (a cliff, a limit), labelled at the top.
  function drawMarks(u, marks) {
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = "#b3261e";
    ctx.fillStyle = "#b3261e";
    ctx.setLineDash([4, 4]);
    ctx.font = `${12 * devicePixelRatio}px sans-serif`;
    for (const [x, label] of marks) {
      const left = u.valToPos(x, "x", true);
      if (!Number.isFinite(left) || left < u.bbox.left || left > u.bbox.left + u.bbox.width) continue;
      ctx.beginPath();
      ctx.moveTo(left, u.bbox.top);
      ctx.lineTo(left, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.fillText(label, left + 4, u.bbox.top + 14 * devicePixelRatio);
    }
    ctx.restore();
  }

  function data(chart) {
    const xs = Array.from(chart.rows.keys()).sort((a, b) => a - b);
    return [xs].concat(chart.spec.series.map((_, i) => xs.map((x) => chart.rows.get(x)[i] ?? null)));
  }

  let pending = false;
  function scheduleDraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      for (const chart of charts) {
        if (!chart.rows.size) continue;
        if (!chart.plot) chart.plot = makePlot(chart);
        chart.plot.setData(data(chart));
      }
      live.dataset.points = String(charts.reduce((n, c) => n + c.rows.size, 0));
    });
  }

  function addSamples(samples) {
    for (const [series, x, y] of samples) {
      const hit = chartOfSeries.get(series);
      if (!hit) continue;
      const [chart, i] = hit;
      let row = chart.rows.get(x);
      if (!row) chart.rows.set(x, (row = new Array(chart.spec.series.length).fill(null)));
      row[i] = y;
    }
    scheduleDraw();
  }

  live.addEventListener("htmx:wsBeforeMessage", (evt) => {
    const message = evt.detail.message;
    if (typeof message !== "string" || message[0] !== "{") return; // HTML: htmx swaps it
    evt.preventDefault();
    const frame = JSON.parse(message);
    if (frame.kind === "snapshot" || frame.kind === "samples") {
      if (frame.kind === "snapshot") charts.forEach((chart) => chart.rows.clear());
      addSamples(frame.samples);
    } else {
      // Other panes (the trace) listen for their own kinds of frame.
      live.dispatchEvent(new CustomEvent("sysops:frame", { detail: frame }));
    }
  });

  // Scroll the log only when it grew, and in the next frame: reading scrollHeight after every
  // message would force a layout of the whole page (the trace pane included) per message.
  let logLines = -1;
  let logScroll = false;
  live.addEventListener("htmx:wsAfterMessage", () => {
    const logs = document.getElementById("run-logs");
    if (!logs || logs.children.length === logLines || logScroll) return;
    logScroll = true;
    requestAnimationFrame(() => {
      logScroll = false;
      while (logs.children.length > MAX_LOG_LINES) logs.firstElementChild.remove();
      logLines = logs.children.length;
      logs.scrollTop = logs.scrollHeight;
    });
  });
})();
