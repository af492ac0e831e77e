// The dashboard's only script (served from /ui/static, so the CSP can forbid inline script).
// On a run page it follows the run's event stream: log lines are appended as text, and when a
// step or the run's status changes the page's live part is fetched again as server-rendered,
// autoescaped HTML and swapped in - no reload, and no run text ever passes through innerHTML.
"use strict";

(function () {
  const FINAL = new Set(["succeeded", "failed", "no_changes", "cancelled", "needs_routing"]);
  const live = document.getElementById("live");
  const logEl = document.getElementById("log");
  const state = document.getElementById("stream-state");
  if (!live || !logEl) return;

  const say = (text) => { if (state) state.textContent = text; };
  const signIn = () => window.location.assign("/ui/login?next=" + encodeURIComponent(window.location.pathname));

  let busy = false;
  let again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        const resp = await fetch(live.dataset.live, {credentials: "same-origin"});
        if (resp.status === 401) { signIn(); return; }
        if (!resp.ok) break;
        // DOMParser builds an inert document (its scripts never run); the markup is ours,
        // rendered with autoescaping, so hostile run text arrives as text nodes.
        const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
        const open = Array.from(live.querySelectorAll("details[open]"), (d) => d.id);
        live.replaceChildren(...Array.from(doc.body.childNodes));
        for (const id of open) {
          const d = document.getElementById(id);
          if (d) d.open = true;
        }
        live.dataset.version = String(Number(live.dataset.version || "0") + 1);
      } while (again);
    } finally {
      busy = false;
    }
  }

  function timeOf(ts) {
    const d = new Date(Number(ts) * 1000);
    return isNaN(d.getTime()) ? "" : d.toISOString().replace("T", " ").slice(0, 19);
  }

  let fresh = true;  // the stream starts from the first line: replace what the page was served with
  const events = new EventSource(live.dataset.events);
  events.addEventListener("open", () => { fresh = true; say("following live"); });
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED) say("stream closed"); else say("reconnecting…");
  });
  events.addEventListener("log", (ev) => {
    const line = JSON.parse(ev.data);
    if (fresh) { logEl.replaceChildren(); fresh = false; }
    const div = document.createElement("div");
    const level = /^[a-z]+$/.test(String(line.level)) ? line.level : "info";
    div.className = "line level-" + level;
    div.textContent = timeOf(line.ts) + " " + level + " " + String(line.message);
    const atBottom = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
    logEl.appendChild(div);
    if (atBottom) logEl.scrollTop = logEl.scrollHeight;
  });
  events.addEventListener("step", () => { refresh(); });
  events.addEventListener("run", (ev) => {
    const run = JSON.parse(ev.data);
    refresh();
    if (FINAL.has(run.status)) {
      events.close();  // the server ends the stream here; do not let EventSource reconnect
      say("run ended");
    }
  });
})();
