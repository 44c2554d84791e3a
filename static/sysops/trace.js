// The live trace pane: strace-format lines coloured by category and failure, filters, pause /
// follow, a bounded number of lines kept (the full trace is a download), a detail view of the
// selected line, the strace -c style summary and the observer effect.
(function () {
  "use strict";
  const pane = document.getElementById("trace");
  const live = document.getElementById("run-live");
  const helpEl = document.getElementById("trace-help");
  if (!pane || !live || !helpEl) return;
  const KEEP = Number(pane.dataset.keep); // lines kept in the page (the server's TRACE_LINES_SHOWN)
  const help = JSON.parse(helpEl.textContent);
  const $ = (id) => document.getElementById(id);
  const linesEl = $("trace-lines");
  const detailEl = $("trace-detail");
  const filters = { name: $("trace-name"), category: $("trace-category"), pid: $("trace-pid"), failed: $("trace-failed"), harness: $("trace-harness") };

  let events = []; // newest last, at most KEEP
  let total = 0;
  let t0 = pane.dataset.t0 ? Number(pane.dataset.t0) : null;
  let following = true;
  let selected = null;
  let pending = false;
  let rebuild = true; // filters changed or a snapshot arrived: redraw every kept line
  let incoming = []; // events that arrived since the last frame, to append

  function text(tag, cls, value) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }

  function failed(e) {
    return Boolean(e.errno) || e.cut_short;
  }

  function matches(e) {
    const name = filters.name.value.trim();
    if (name && !(e.name || "").includes(name)) return false;
    if (filters.category.value && e.category !== filters.category.value) return false;
    const pid = filters.pid.value.trim();
    if (pid && String(e.pid) !== pid) return false;
    if (filters.failed.checked && !failed(e)) return false;
    // The worker's own calls (sysops/tracing/filter.py) are hidden unless asked for.
    if (e.harness && !(filters.harness && filters.harness.checked)) return false;
    return true;
  }

  function rel(ts) {
    if (ts == null || t0 == null) return "";
    return "+" + (ts - t0).toFixed(6);
  }

  function lineOf(e) {
    const row = document.createElement("div");
    row.className = "tl cat-" + (e.category || "other") + (failed(e) ? " failed" : "") + (e.harness ? " harness" : "");
    row.dataset.seq = e.seq;
    row.append(text("span", "pid", String(e.pid ?? "").padStart(6) + " "), text("span", "t", rel(e.ts).padEnd(12) + " "));
    // The line as the server rendered it (sysops/tracing/render.py): one renderer for the page,
    // the CLI and the strace download.
    row.append(text("span", "c", e.text));
    if (e.cut_short && e.kind === "syscall") row.append(text("span", "r", "  [cut short]"));
    return row;
  }

  // Appending only what arrived keeps each frame's work proportional to the new lines, not to
  // the thousand kept: a fast trace must not block the page's main thread.
  function render() {
    pending = false;
    const frag = document.createDocumentFragment();
    if (rebuild) {
      for (const e of events) if (matches(e)) frag.append(lineOf(e));
      linesEl.replaceChildren(frag);
      rebuild = false;
    } else {
      for (const e of incoming) if (matches(e)) frag.append(lineOf(e));
      linesEl.append(frag);
      let extra = linesEl.childElementCount - KEEP;
      while (extra-- > 0) linesEl.firstElementChild.remove();
    }
    incoming = [];
    if (selected != null) {
      const sel = linesEl.querySelector('[data-seq="' + selected + '"]');
      if (sel) sel.classList.add("sel");
    }
    if (following) linesEl.scrollTop = linesEl.scrollHeight;
    const more = Math.max(0, total - events.length);
    $("trace-count").textContent =
      linesEl.childElementCount + " lines shown of " + events.length + " kept" +
      (more ? "; " + more.toLocaleString() + " more exist (download the full trace)" : "") +
      " · " + total.toLocaleString() + " events in all";
    pane.dataset.lines = String(events.length);
  }

  function schedule() {
    if (!pending) {
      pending = true;
      requestAnimationFrame(render);
    }
  }

  function manLink(page, section) {
    const a = text("a", "man", "man " + section + " " + page);
    a.href = "https://man7.org/linux/man-pages/man" + section + "/" + page + "." + section + ".html";
    a.target = "_blank";
    a.rel = "noopener";
    return a;
  }

  // What a learner needs first: why the call failed, then where to read more, then the fields.
  function showDetail(e) {
    const parts = [];
    if (e.errno) {
      const info = help.errnos[e.errno];
      parts.push(text("p", "bad errno-meaning", e.errno + ": " + (info ? info.message : e.errmsg || "")));
      if (info) parts.push(text("p", "", info.explanation));
    }
    if (e.kind === "syscall" && e.name) {
      const links = text("p", "man-links", "Manual: ");
      links.append(manLink(help.man_aliases[e.name] || e.name, 2));
      if (e.errno) links.append(" · ", manLink("errno", 3));
      parts.push(links);
    }
    const rows = [
      ["pid", e.pid], ["time", rel(e.ts) + " s"], ["syscall", e.name], ["category", e.category],
      ["return", e.ret], ["made by", e.harness ? "the harness (the worker, for itself)" : "the experiment"], ["duration", e.duration_s != null ? (e.duration_s * 1e6).toFixed(1) + " µs" : "—"],
    ];
    const table = document.createElement("table");
    for (const [k, v] of rows) {
      const tr = document.createElement("tr");
      tr.append(text("th", "", k), text("td", "", v == null ? "—" : String(v)));
      table.append(tr);
    }
    (e.args || []).forEach((a, i) => {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.append(text("code", "", a));
      const path = e.fd_paths && e.fd_paths[String(i)];
      if (path) td.append(text("div", "muted", "fd → " + path));
      tr.append(text("th", "", "arg " + i), td);
      table.append(tr);
    });
    detailEl.replaceChildren(...parts, table);
    detailEl.scrollTop = 0;
    detailEl.classList.remove("muted");
  }

  function renderState(state) {
    if (!state) return;
    if (state.t0 != null) t0 = state.t0;
    if (state.events != null) total = state.events;
    const parts = [];
    if (state.passed) parts.push(state.passed + ".");
    if (state.status === "tracing") parts.push(state.eta_text ? "Tracing: " + state.eta_text + "." : "Tracing…");
    const el = $("trace-state");
    el.replaceChildren(text("span", "", parts.join(" ")));
    if (state.reason) el.append(" ", text("strong", "bad", state.reason));
    if (state.observer_text) $("trace-observer").textContent = state.observer_text;
    pane.dataset.status = state.status || "";
  }

  live.addEventListener("sysops:frame", (evt) => {
    const frame = evt.detail;
    if (frame.kind !== "trace") return;
    if (frame.snapshot) {
      events = [];
      rebuild = true;
    }
    renderState(frame.state);
    if (frame.events && frame.events.length) {
      events = events.concat(frame.events);
      if (events.length > KEEP) events = events.slice(events.length - KEEP);
      incoming = incoming.concat(frame.events).slice(-KEEP);
    }
    total = Math.max(total, events.length);
    if (following || frame.snapshot) schedule();
    else $("trace-count").textContent = "paused · " + total.toLocaleString() + " events in all";
  });

  function redraw() {
    rebuild = true;
    schedule();
  }

  for (const el of Object.values(filters)) el.addEventListener("input", redraw);
  $("trace-follow").addEventListener("click", (evt) => {
    following = !following;
    evt.target.textContent = following ? "Pause" : "Follow";
    evt.target.setAttribute("aria-pressed", String(following));
    if (following) redraw(); // lines that arrived while paused
  });
  linesEl.addEventListener("click", (evt) => {
    const row = evt.target.closest(".tl");
    if (!row) return;
    selected = Number(row.dataset.seq);
    linesEl.querySelectorAll(".sel").forEach((el) => el.classList.remove("sel"));
    row.classList.add("sel");
    const e = events.find((x) => x.seq === selected);
    if (e) showDetail(e);
    if (following) { // selecting a line stops the view from jumping away from it
      following = false;
      $("trace-follow").textContent = "Follow";
      $("trace-follow").setAttribute("aria-pressed", "false");
    }
  });
})();
