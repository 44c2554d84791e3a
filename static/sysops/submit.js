// Live submit: a form that queues a run (data-live-submit) posts in the background, and the run
// page it answers with replaces this one without a navigation. A websocket opened with this
// page (/ws/watch/) starts watching the new run as soon as the answer names it, before the page
// is swapped in, and becomes the run page's own socket: the run's first events are on their way
// while the browser would otherwise still be following a redirect, loading a page and opening a
// connection. Without this script (or on any surprise) the form posts as an ordinary form.
(function () {
  "use strict";
  if (!window.fetch || !window.WebSocket || !window.htmx || !window.DOMParser) return;
  if (!document.querySelector("form[data-live-submit]")) return;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const watchUrl = scheme + location.host + "/ws/watch/";

  // The waiting socket, with what it received before a run page took it over.
  let waiting = null; // {ws, buffered, handedOver}
  function openSocket() {
    const w = { ws: new WebSocket(watchUrl), buffered: [], handedOver: false };
    w.ws.addEventListener("message", (evt) => {
      if (!w.handedOver) w.buffered.push(evt.data);
    });
    w.ws.addEventListener("close", () => {
      if (waiting === w) waiting = null;
    });
    waiting = w;
  }
  openSocket();
  // Back on a page from the browser's cache: its socket was closed when it was left.
  window.addEventListener("pageshow", (evt) => {
    if (evt.persisted && !waiting) openSocket();
  });

  // The run page's ws-connect asks htmx for a socket: it gets the one already watching its run.
  let handOver = null; // {url, ws}
  const createWebSocket = htmx.createWebSocket || ((url) => new WebSocket(url));
  htmx.createWebSocket = function (url) {
    if (handOver && url === handOver.url) {
      const ws = handOver.ws;
      handOver = null;
      return ws;
    }
    return createWebSocket(url);
  };

  let busy = false;
  document.addEventListener("submit", (evt) => {
    const form = evt.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-live-submit")) return;
    if (evt.defaultPrevented) return;
    evt.preventDefault();
    if (busy) return; // a double click: the first post is on its way
    busy = true;
    submit(form, evt.submitter).finally(() => {
      busy = false;
    });
  });

  async function submit(form, submitter) {
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form, submitter || undefined),
        headers: { "X-Sysops-Submit": "live", Accept: "text/html" },
        credentials: "same-origin",
      });
    } catch (err) {
      form.submit(); // the network failed: the browser's own post shows what happens
      return;
    }
    const runId = response.headers.get("X-Sysops-Run");
    const runUrl = response.headers.get("Location");
    // The batch number and status the run page shows (its first snapshot leaves those out).
    const [seq, status] = (response.headers.get("X-Sysops-Shown") || "").split(" ");
    // Watch the run now: its snapshot and first batches wait in the buffer for its page.
    const w = runId && waiting && waiting.ws.readyState === WebSocket.OPEN ? waiting : null;
    if (w) w.ws.send(JSON.stringify({ kind: "watch", run: Number(runId), seq: Number(seq), status }));
    if (runId) {
      if (waiting && waiting !== w) waiting.ws.close(); // still connecting: of no use now
      waiting = null; // the run's socket now
    }
    if (response.redirected) {
      location.assign(response.url); // several runs (their comparison), or sign in again
      return;
    }
    const html = await response.text();
    const next = new DOMParser().parseFromString(html, "text/html");
    const main = document.querySelector("main");
    const nextMain = next.querySelector("main");
    if (!main || !nextMain) {
      location.assign(runUrl || response.url);
      return;
    }
    if (runId && runUrl) {
      history.pushState({ run: runId }, "", runUrl);
      shownPath = location.pathname;
    }
    document.title = next.title;
    for (const link of next.head.querySelectorAll("link[rel=stylesheet]")) {
      if (!document.querySelector(`link[rel=stylesheet][href="${link.getAttribute("href")}"]`)) {
        document.head.appendChild(document.importNode(link, true));
      }
    }
    main.replaceChildren(...Array.from(nextMain.childNodes, (node) => document.importNode(node, true)));
    window.scrollTo(0, 0);
    // The new page's scripts run in order once its content is in place; then htmx connects it.
    for (const script of next.querySelectorAll("script[src]")) {
      const src = script.getAttribute("src");
      if (!document.querySelector(`script[src="${src}"]`)) await loadScript(src);
    }
    const socketElt = main.querySelector("[ws-connect]");
    if (w && socketElt && socketElt.getAttribute("ws-connect") === `/ws/runs/${runId}/`) {
      handOver = { url: scheme + location.host + socketElt.getAttribute("ws-connect"), ws: w.ws };
    }
    htmx.process(main);
    if (w && handOver === null) {
      // The run page took the socket: what arrived meanwhile (the snapshot, the first
      // batches) reaches its listeners first, in order; what comes next reaches them directly.
      w.handedOver = true;
      for (const data of w.buffered) w.ws.dispatchEvent(new MessageEvent("message", { data }));
      w.buffered = [];
    } else if (w) {
      handOver = null;
      w.ws.close();
    }
    // The new page has a form that queues a run (the same form with its errors, say).
    if (!waiting && main.querySelector("form[data-live-submit]")) openSocket();
  }

  function loadScript(src) {
    return new Promise((resolve) => {
      const el = document.createElement("script");
      el.src = src;
      el.async = false;
      el.onload = el.onerror = () => resolve();
      document.body.appendChild(el);
    });
  }

  // Back from the run page to the form (or forward again): load that page as it is now.
  let shownPath = location.pathname;
  window.addEventListener("popstate", () => {
    if (location.pathname !== shownPath) location.reload();
  });
})();
