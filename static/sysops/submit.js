// Live submit: a form that queues a run (data-live-submit) is sent over a websocket opened with
// this page (/ws/watch/). The server queues the run as the form's HTTP post would and the socket
// watches it at once; the run page then replaces this one without a navigation, and the socket
// becomes its own. The run's first events are on their way while a browser would otherwise
// still be posting, following a redirect, loading a page and opening a connection.
// A form the server refuses over the socket (errors, a quota) is posted over HTTP, which shows
// why; so is every form when the socket is not open. Without this script the form posts as an
// ordinary form.
(function () {
  "use strict";
  if (!window.fetch || !window.WebSocket || !window.htmx || !window.DOMParser) return;
  if (!document.querySelector("form[data-live-submit]")) return;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const watchUrl = scheme + location.host + "/ws/watch/";
  // How long a queued run's answer may take over the socket before the form posts over HTTP
  // (its one-time token queues nothing twice).
  const ANSWER_TIMEOUT_MS = 5000;
  const ANSWERS = ["queued", "redirect", "refused"];

  // The waiting socket, with what it received before a run page took it over.
  let waiting = null; // {ws, buffered, handedOver, answer}
  function openSocket() {
    const w = { ws: new WebSocket(watchUrl), buffered: [], handedOver: false, answer: null };
    w.ws.addEventListener("message", (evt) => {
      if (w.handedOver) return;
      if (w.answer && typeof evt.data === "string" && evt.data.startsWith('{"kind": "')) {
        const frame = JSON.parse(evt.data);
        if (ANSWERS.includes(frame.kind)) {
          w.answer(frame);
          return;
        }
      }
      w.buffered.push(evt.data);
    });
    w.ws.addEventListener("close", () => {
      if (waiting === w) waiting = null;
      if (w.answer) w.answer(null);
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
    if (busy) return; // a double click: the first one is on its way
    busy = true;
    submit(form, evt.submitter).finally(() => {
      busy = false;
    });
  });

  async function submit(form, submitter) {
    const body = new FormData(form, submitter || undefined);
    const w = waiting && waiting.ws.readyState === WebSocket.OPEN ? waiting : null;
    if (w) {
      const answer = await sendOverSocket(w, form, body);
      if (answer && answer.kind === "queued") {
        waiting = null; // the run's socket now
        await swapIn(answer.page, answer.url, w, String(answer.run));
        return;
      }
      if (answer && answer.kind === "redirect") {
        location.assign(answer.url); // several runs: their comparison
        return;
      }
      // Refused, or no answer: this socket is done with; the HTTP post says what happened.
      if (waiting === w) waiting = null;
      w.ws.close();
    }
    await postOverHttp(form, body);
  }

  function sendOverSocket(w, form, body) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => w.answer && w.answer(null), ANSWER_TIMEOUT_MS);
      w.answer = (frame) => {
        clearTimeout(timer);
        w.answer = null;
        resolve(frame);
      };
      // The form's action is its experiment's page: /experiments/<slug>/.
      const experiment = new URL(form.action).pathname.split("/").filter(Boolean)[1];
      const fields = Array.from(body.entries(), ([name, value]) => [name, String(value)]);
      w.ws.send(JSON.stringify({ kind: "submit", experiment, fields }));
    });
  }

  async function postOverHttp(form, body) {
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body,
        headers: { "X-Sysops-Submit": "live", Accept: "text/html" },
        credentials: "same-origin",
      });
    } catch (err) {
      form.submit(); // the network failed: the browser's own post shows what happens
      return;
    }
    const runId = response.headers.get("X-Sysops-Run");
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
    if (runId) {
      await swapIn(html, response.headers.get("Location"), w, runId);
    } else {
      await swapIn(html, null, null, null); // the form again, with the server's reasons
    }
  }

  // Put the page in ``html`` in place of this one's main content; ``w``: the socket watching
  // run ``runId``, which its page takes over.
  async function swapIn(html, url, w, runId) {
    const next = new DOMParser().parseFromString(html, "text/html");
    const main = document.querySelector("main");
    const nextMain = next.querySelector("main");
    if (!main || !nextMain) {
      if (w) w.ws.close();
      location.assign(url || location.href);
      return;
    }
    if (url) {
      history.pushState({ run: runId }, "", url);
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
    // The new page's scripts run in order once its content is in place (those loaded with
    // this page are told it is there); then htmx connects it.
    for (const script of next.querySelectorAll("script[src]")) {
      const src = script.getAttribute("src");
      if (!document.querySelector(`script[src="${src}"]`)) await loadScript(src);
    }
    document.dispatchEvent(new Event("sysops:page"));
    const socketElt = main.querySelector("[ws-connect]");
    const path = socketElt && socketElt.getAttribute("ws-connect");
    if (w && path === `/ws/runs/${runId}/`) handOver = { url: scheme + location.host + path, ws: w.ws };
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
