"""`GET /ui`: a one-page dashboard. The page holds no data; its script calls the runs API with the
operator token the user pastes (kept in sessionStorage), and follows a run's events over SSE."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>auto-code runs</title>
<style>body{font:14px system-ui;margin:2em}table{border-collapse:collapse}td,th{padding:4px 8px;
border-bottom:1px solid #ddd;text-align:left}pre{background:#f6f6f6;padding:8px;max-height:40em;overflow:auto}
.failed{color:#b00}.succeeded{color:#070}</style></head><body>
<h1>auto-code</h1>
<label>Operator token <input id="tok" type="password" size="40"></label> <button id="load">Load runs</button>
<table id="runs"><thead><tr><th>run</th><th>status</th><th>created</th><th>turns</th><th>cost</th><th>PR</th>
</tr></thead><tbody></tbody></table><h2 id="title"></h2><pre id="detail"></pre><pre id="log"></pre>
<script>
const tok = document.getElementById('tok'); tok.value = sessionStorage.getItem('tok') || '';
const hdr = () => ({Authorization: 'Bearer ' + tok.value});
const text = (s) => document.createTextNode(s == null ? '' : String(s));
async function load() {
  sessionStorage.setItem('tok', tok.value);
  const r = await fetch('/runs?limit=100', {headers: hdr()}); const runs = await r.json();
  const body = document.querySelector('#runs tbody'); body.replaceChildren();
  for (const run of (Array.isArray(runs) ? runs : [])) {
    const tr = document.createElement('tr');
    const cells = [run.run_id, run.status, run.created_at, run.turns, run.cost_usd.toFixed(4), run.pr_url];
    for (const v of cells) {
      const td = document.createElement('td'); td.appendChild(text(v)); tr.appendChild(td); }
    tr.className = run.status; tr.onclick = () => show(run.run_id); body.appendChild(tr);
  }
}
async function show(id) {
  document.getElementById('title').replaceChildren(text(id));
  const r = await fetch('/runs/' + encodeURIComponent(id), {headers: hdr()});
  document.getElementById('detail').replaceChildren(text(JSON.stringify(await r.json(), null, 2)));
  const logEl = document.getElementById('log'); logEl.replaceChildren();
  const resp = await fetch('/runs/' + encodeURIComponent(id) + '/events', {headers: hdr()});
  const reader = resp.body.getReader(); const dec = new TextDecoder();
  for (;;) { const {value, done} = await reader.read(); if (done) break;
    logEl.appendChild(text(dec.decode(value))); logEl.scrollTop = logEl.scrollHeight; }
}
document.getElementById('load').onclick = load;
</script></body></html>"""


@router.get("/ui", response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> str:
    return _PAGE
