// Live charts of a run. The websocket carries HTML frames (htmx swaps them by id) and JSON
// frames with samples: a "snapshot" (everything so far) then "samples" batches. Charts redraw at
// most once per animation frame, however fast batches arrive.
(function () {
  "use strict";
  const COLORS = ["#1a56db", "#e8590c", "#0f766e", "#9333ea", "#b3261e", "#ca8a04"];

  // A chart spec may give each series its colour and dash pattern (the comparison page colours
  // by run, and tells a run's series apart by dash); by default series take the palette in order.
  function makePlot(spec, el) {
    const width = plotWidth(el);
    const colorOf = (i) => (spec.colors || [])[i] || COLORS[i % COLORS.length];
    const series = [{ label: spec.x_label }].concat(
      spec.series.map((name, i) => ({
        label: (spec.labels || {})[name] || name,
        stroke: colorOf(i),
        dash: (spec.dashes || [])[i] || [],
        spanGaps: true,
        paths: spec.points ? () => null : undefined,
        // A dashed series drawn as points shows hollow ones instead.
        points: spec.points
          ? { show: true, size: 5, fill: ((spec.dashes || [])[i] || []).length ? "#fff" : colorOf(i), stroke: colorOf(i) }
          : { show: false },
      }))
    );
    return new uPlot(
      {
        width,
        height: 280,
        scales: {
          x: spec.x_log ? { time: false, distr: 3 } : { time: false },
          y: spec.y_log ? { distr: 3 } : {},
        },
        axes: [{ label: spec.x_label }, { label: spec.y_label, size: 70 }],
        series,
        hooks: { draw: [(u) => drawMarks(u, spec.x_marks || [])] },
      },
      [[]].concat(spec.series.map(() => [])),
      el
    );
  }

  // The figure's inner width: a chart follows its box (a phone, a resized window).
  function plotWidth(el) {
    return Math.max(160, el.clientWidth - 16);
  }

  function followWidth(plot, el) {
    new ResizeObserver(() => {
      const width = plotWidth(el);
      if (width !== plot.width) plot.setSize({ width, height: plot.height });
    }).observe(el);
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

  // Charts fed with [series, x, y] samples: rows map x -> array of y per series.
  function chartsOf(specs) {
    const charts = specs.map((spec) => ({ spec, rows: new Map(), plot: null }));
    const chartOfSeries = new Map();
    charts.forEach((chart) => chart.spec.series.forEach((s, i) => chartOfSeries.set(s, [chart, i])));
    function add(samples) {
      for (const [series, x, y] of samples) {
        const hit = chartOfSeries.get(series);
        if (!hit) continue;
        const [chart, i] = hit;
        let row = chart.rows.get(x);
        if (!row) chart.rows.set(x, (row = new Array(chart.spec.series.length).fill(null)));
        row[i] = y;
      }
    }
    return { charts, add };
  }

  function data(chart) {
    const xs = Array.from(chart.rows.keys()).sort((a, b) => a - b);
    return [xs].concat(chart.spec.series.map((_, i) => xs.map((x) => chart.rows.get(x)[i] ?? null)));
  }

  function draw(chart) {
    if (!chart.rows.size) return;
    if (!chart.plot) {
      const el = document.getElementById("chart-" + chart.spec.id);
      chart.plot = makePlot(chart.spec, el);
      followWidth(chart.plot, el);
    }
    chart.plot.setData(data(chart));
  }

  window.SysopsCharts = { chartsOf, draw };

  // A run page starts its charts when it loads, or when sysops/submit.js has swapped it in
  // place of a form (this script was loaded with the form, ahead of the click).
  start();
  document.addEventListener("sysops:page", start);

  function start() {
    const specEl = document.getElementById("charts-spec");
    const live = document.getElementById("run-live");
    if (!specEl || !live || live.dataset.started) return;
    live.dataset.started = "1";
    const MAX_LOG_LINES = Number(live.dataset.maxLogLines); // the server's LOG_LINES_SHOWN
    const { charts, add } = chartsOf(JSON.parse(specEl.textContent));

    let pending = false;
    function scheduleDraw() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        charts.forEach(draw);
        live.dataset.points = String(charts.reduce((n, c) => n + c.rows.size, 0));
      });
    }

    function addSamples(samples) {
      add(samples);
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
        reportFirstFrame(evt.detail.socketWrapper);
      } else {
        // Other panes (the trace) listen for their own kinds of frame.
        live.dispatchEvent(new CustomEvent("sysops:frame", { detail: frame }));
      }
    });

    // Tell the server when live data first shows on this page: the last stage of the run's
    // start on its timeline (the server keeps only the first report).
    let reported = false;
    function showsLiveData() {
      const p = document.querySelector("#run-progress progress");
      return (p && p.value > 0) || charts.some((chart) => chart.rows.size > 0);
    }

    function reportFirstFrame(socketWrapper) {
      if (reported || !showsLiveData()) return;
      reported = true;
      socketWrapper.send(JSON.stringify({ kind: "first_frame" }));
    }

    // Scroll the log only when it grew, and in the next frame: reading scrollHeight after every
    // message would force a layout of the whole page (the trace pane included) per message.
    let logLines = -1;
    let logScroll = false;
    live.addEventListener("htmx:wsAfterMessage", (evt) => {
      reportFirstFrame(evt.detail.socketWrapper);
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
  }
})();
