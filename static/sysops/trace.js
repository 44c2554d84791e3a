// The trace pane. With no filter it follows the live trace: strace-format lines coloured by
// category and failure, the newest few hundred of each batch (the server says how many it left
// out), drawn at most once per animation frame. With a filter, or a click on a row of the
// syscall summary, it searches every stored event on the server, a page at a time. A detail
// view shows the selected line; the strace -c style summary and the observer effect follow.
(function () {
  "use strict";
  const pane = document.getElementById("trace");
  const live = document.getElementById("run-live");
  const helpEl = document.getElementById("trace-help");
  if (!pane || !live || !helpEl) return;
  const KEEP = Number(pane.dataset.keep); // lines kept in the page (the server's TRACE_LINES_SHOWN)
  // While the pane follows a live trace it holds only the newest lines in the DOM and redraws
  // a few times a second: every redraw lays out and paints the lines, and on a busy machine
  // (the traced run itself takes the CPU) that work must stay far under 50 ms a task. Pausing
  // shows every kept line.
  const LIVE_DOM_LINES = 150;
  const LIVE_REDRAW_INTERVAL_MS = 250;
  const SEARCH_URL = pane.dataset.searchUrl;
  const SEARCH_DELAY_MS = 250;
  const help = JSON.parse(helpEl.textContent);
  const $ = (id) => document.getElementById(id);
  const linesEl = $("trace-lines");
  const detailEl = $("trace-detail");
  const moreEl = $("trace-more");
  const syscallEl = $("trace-syscall");
  const filters = {
    name: $("trace-name"), category: $("trace-category"), pid: $("trace-pid"),
    failed: $("trace-failed"), text: $("trace-text"), from: $("trace-from"), to: $("trace-to"),
  };
  // "show harness calls", where the page has it: the worker's own calls are hidden otherwise.
  const harnessEl = $("trace-harness");
  if (harnessEl) filters.harness = harnessEl;

  let events = []; // live: newest last, at most KEEP (gap markers included)
  let total = 0;
  let t0 = pane.dataset.t0 ? Number(pane.dataset.t0) : null;
  let following = true;
  let selected = null; // key of the selected line
  let pending = false;
  let lastDraw = 0;
  let rebuild = true; // a snapshot arrived or the view changed: redraw every kept line
  let incoming = []; // live events that arrived since the last frame, to append
  let syscall = ""; // the exact name chosen in the summary
  // Search state: the results shown, where the next page starts, the request in flight.
  let search = null; // {params, results, next, more, scanned, stored, busy}
  let searchTimer = null;
  let searchToken = 0;

  function text(tag, cls, value) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }

  function failed(e) {
    return Boolean(e.errno) || e.cut_short;
  }

  function rel(ts) {
    if (ts == null || t0 == null) return "";
    return "+" + (ts - t0).toFixed(6);
  }

  function sizeText(bytes) { // as Django's filesizeformat writes it
    const units = ["bytes", "KB", "MB", "GB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return i ? bytes.toFixed(1) + " " + units[i] : bytes + " bytes";
  }

  function keyOf(e) {
    return e.index != null ? "i" + e.index : "s" + e.seq;
  }

  function lineOf(e) {
    if (e.gap) {
      const row = text("div", "tl gap", "… " + e.gap.toLocaleString() + " events not sent live (search or download to see them)");
      return row;
    }
    const row = document.createElement("div");
    row.className = "tl cat-" + (e.category || "other") + (failed(e) ? " failed" : "") + (e.harness ? " harness" : "");
    row.dataset.key = keyOf(e);
    row.append(text("span", "pid", String(e.pid ?? "").padStart(6) + " "), text("span", "t", rel(e.ts).padEnd(12) + " "));
    // The line as the server rendered it (sysops/tracing/render.py): one renderer for the page,
    // the CLI and the strace download.
    row.append(text("span", "c", e.text));
    if (e.cut_short && e.kind === "syscall") row.append(text("span", "r", "  [cut short]"));
    if (e.key === selected) row.classList.add("sel");
    return row;
  }

  function searchParams() {
    const p = new URLSearchParams();
    const add = (k, v) => { if (v) p.set(k, v); };
    add("name", filters.name.value.trim());
    add("syscall", syscall);
    add("category", filters.category.value);
    add("pid", filters.pid.value.trim());
    if (filters.failed.checked) p.set("failed", "1");
    if (harnessEl && harnessEl.checked) p.set("harness", "1");
    add("text", filters.text.value);
    add("from", filters.from.value.trim());
    add("to", filters.to.value.trim());
    return p;
  }

  function countText() {
    if (search) {
      const n = search.results.length;
      let s = n.toLocaleString() + (n === 1 ? " match" : " matches") + " shown · searched " +
        search.scanned.toLocaleString() + " events read of " + search.stored.toLocaleString() + " stored";
      if (search.error) s = search.error;
      else if (search.busy) s += " · searching…";
      else if (!search.more) s += " · end of the stored trace";
      return s;
    }
    const more = Math.max(0, total - events.filter((e) => !e.gap).length);
    return (following ? "" : "paused · ") + "newest lines of each live batch" +
      (more ? "; " + more.toLocaleString() + " more events exist (filter to search them all, or download)" : "") +
      " · " + total.toLocaleString() + " events in all";
  }

  function trimDom(keep) {
    const extra = linesEl.childElementCount - keep;
    if (extra <= 0) return;
    // One range deletion, not one removal per line.
    const range = document.createRange();
    range.setStartBefore(linesEl.firstChild);
    range.setEndAfter(linesEl.children[extra - 1]);
    range.deleteContents();
  }

  function render() {
    pending = false;
    const frag = document.createDocumentFragment();
    if (search) {
      if (rebuild) {
        for (const e of search.results) frag.append(lineOf(e));
        linesEl.replaceChildren(frag);
        rebuild = false;
      }
    } else if (rebuild || incoming.length >= LIVE_DOM_LINES) {
      for (const e of following ? events.slice(-LIVE_DOM_LINES) : events) frag.append(lineOf(e));
      linesEl.replaceChildren(frag);
      rebuild = false;
      incoming = [];
    } else if (following) {
      for (const e of incoming) frag.append(lineOf(e));
      linesEl.append(frag);
      trimDom(LIVE_DOM_LINES);
      incoming = [];
    }
    lastDraw = performance.now();
    // Scrolling to the end in the same frame as the writes: one layout, not one per batch.
    if (following && !search) linesEl.scrollTop = linesEl.scrollHeight;
    $("trace-count").textContent = countText();
    moreEl.hidden = !(search && !search.busy && (search.more || pane.dataset.status === "tracing"));
    moreEl.textContent = search && search.more ? "Load more" : "Look for newer events";
    pane.dataset.lines = String(linesEl.childElementCount);
    pane.dataset.mode = search ? "search" : "live";
  }

  function schedule() {
    if (pending) return;
    pending = true;
    const wait = search || rebuild ? 0 : lastDraw + LIVE_REDRAW_INTERVAL_MS - performance.now();
    if (wait > 0) setTimeout(() => requestAnimationFrame(render), wait);
    else requestAnimationFrame(render);
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
    if (e.index != null) rows.push(["event", "#" + e.index.toLocaleString() + " of the run"]);
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
    if (state.download_bytes) {
      for (const el of pane.querySelectorAll(".downloads .size")) {
        const bytes = state.download_bytes[el.dataset.format];
        if (bytes != null) el.textContent = "(about " + sizeText(bytes) + ")";
      }
    }
    pane.dataset.status = state.status || "";
  }

  live.addEventListener("sysops:frame", (evt) => {
    const frame = evt.detail;
    if (frame.kind !== "trace") return;
    if (frame.snapshot) {
      events = [];
      incoming = [];
      rebuild = true;
    }
    renderState(frame.state);
    const batch = (frame.events || []).filter((e) => !e.harness || (harnessEl && harnessEl.checked));
    if (batch.length) {
      for (const e of batch) e.key = keyOf(e);
      // The events of a batch the server did not send: a marker where they were.
      const fresh = frame.skipped ? [{ gap: frame.skipped }].concat(batch) : batch;
      events.push(...fresh);
      if (events.length > KEEP) events.splice(0, events.length - KEEP);
      incoming.push(...fresh);
      if (incoming.length > LIVE_DOM_LINES) incoming.splice(0, incoming.length - LIVE_DOM_LINES);
    }
    total = Math.max(total, events.length);
    if (search) { $("trace-count").textContent = countText(); schedule(); return; }
    if (following || frame.snapshot) schedule();
    else $("trace-count").textContent = countText();
  });

  // A page from the server may come back short when its time budget ran out on a rare match:
  // ask again, from where it stopped, until a page is full or the trace ends (with a bound).
  const PAGE_EVENTS = 200;
  const MAX_REQUESTS_PER_PAGE = 30;

  async function runSearch(append, again = false) {
    if (!append) clearTimeout(searchTimer); // a search typed just before is this one
    const params = append ? search.params : searchParams();
    if (!append && ![...params.keys()].length) { // no filter left: back to the live tail
      search = null;
      rebuild = true;
      schedule();
      return;
    }
    const token = ++searchToken;
    if (!append) search = { params, results: [], next: 0, more: true, scanned: 0, stored: 0 };
    if (!again) { search.wanted = PAGE_EVENTS; search.requests = 0; }
    const current = search;
    search.busy = true;
    search.error = "";
    const query = new URLSearchParams(params);
    query.set("after", String(search.next));
    schedule();
    let reply;
    try {
      const response = await fetch(SEARCH_URL + "?" + query, { headers: { Accept: "application/json" } });
      reply = await response.json();
      if (!response.ok) throw new Error(Object.entries(reply.errors || {}).map(([k, v]) => k + ": " + v.map((x) => x.message).join(" ")).join("; ") || response.statusText);
    } catch (err) {
      if (token !== searchToken || search !== current) return;
      search.busy = false;
      search.error = "search failed: " + err.message;
      schedule();
      return;
    }
    if (token !== searchToken || search !== current) return; // a newer search replaced it
    for (const e of reply.events) e.key = keyOf(e);
    search.results.push(...reply.events);
    search.next = reply.next;
    search.more = reply.more;
    search.scanned += reply.scanned;
    search.stored = reply.stored;
    search.busy = false;
    if (append) {
      const frag = document.createDocumentFragment();
      for (const e of reply.events) frag.append(lineOf(e));
      linesEl.append(frag);
    } else {
      rebuild = true;
      linesEl.scrollTop = 0;
    }
    search.wanted -= reply.events.length;
    search.requests += 1;
    if (reply.more && search.wanted > 0 && search.requests < MAX_REQUESTS_PER_PAGE) {
      runSearch(true, true);
      return;
    }
    schedule();
  }

  function searchSoon() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => runSearch(false), SEARCH_DELAY_MS);
  }

  function showSyscall() {
    syscallEl.replaceChildren();
    syscallEl.hidden = !syscall;
    if (!syscall) return;
    const clear = text("button", "", "×");
    clear.type = "button";
    clear.setAttribute("aria-label", "show every syscall");
    clear.addEventListener("click", () => { syscall = ""; showSyscall(); runSearch(false); });
    syscallEl.append("calls of ", text("code", "", syscall), " ", clear);
  }

  for (const el of Object.values(filters)) el.addEventListener("input", searchSoon);
  moreEl.addEventListener("click", () => { if (search && !search.busy) runSearch(true); });
  // A row of the summary: that syscall's calls, from the whole stored trace. The table is
  // swapped live (htmx), so listen on the pane.
  pane.addEventListener("click", (evt) => {
    const row = evt.target.closest("#trace-summary tbody tr:not(.total)");
    if (!row) return;
    syscall = row.querySelector("th").textContent.trim();
    showSyscall();
    runSearch(false);
    linesEl.scrollIntoView({ block: "nearest" });
  });
  $("trace-follow").addEventListener("click", (evt) => {
    following = !following;
    evt.target.textContent = following ? "Pause" : "Follow";
    evt.target.setAttribute("aria-pressed", String(following));
    // Paused: every kept line, to scroll back through; following: the newest again.
    rebuild = true;
    schedule();
  });
  linesEl.addEventListener("click", (evt) => {
    const row = evt.target.closest(".tl");
    if (!row || !row.dataset.key) return;
    selected = row.dataset.key;
    linesEl.querySelectorAll(".sel").forEach((el) => el.classList.remove("sel"));
    row.classList.add("sel");
    const e = (search ? search.results : events).find((x) => x.key === selected);
    if (e) showDetail(e);
    if (following) { // selecting a line stops the view from jumping away from it
      following = false;
      $("trace-follow").textContent = "Follow";
      $("trace-follow").setAttribute("aria-pressed", "false");
    }
  });
})();
