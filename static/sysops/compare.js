// The comparison page: every run's stored samples drawn at once on the charts run.js draws live,
// one colour per run (the colours and legends come with the chart specs).
(function () {
  "use strict";
  const dataEl = document.getElementById("compare-data");
  const section = document.getElementById("compare-charts");
  if (!dataEl || !section || !window.SysopsCharts) return;
  const { charts: specs, samples } = JSON.parse(dataEl.textContent);
  const { charts, add } = window.SysopsCharts.chartsOf(specs);
  add(samples);
  charts.forEach(window.SysopsCharts.draw);
  section.dataset.drawn = String(charts.filter((chart) => chart.plot).length);
})();
