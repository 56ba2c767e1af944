// Rampart console: the only script. Progressive: every page works without it.
// - forms with data-confirm ask first;
// - the overview refreshes its numbers and charts from /console/api/overview.
"use strict";
document.addEventListener("submit", (e) => {
  const q = e.target.getAttribute && e.target.getAttribute("data-confirm");
  if (q && !window.confirm(q)) e.preventDefault();
});
(function () {
  const charts = document.querySelectorAll("svg[data-series]");
  if (!charts.length) return;
  const series = { rps: [], refused: [] };
  let last = null;
  function draw() {
    charts.forEach((svg) => {
      const pts = series[svg.dataset.series] || [];
      const max = Math.max(1, ...pts);
      const step = pts.length > 1 ? 300 / (pts.length - 1) : 300;
      const coords = pts.map((v, i) => (i * step).toFixed(1) + "," + (58 - (v / max) * 54).toFixed(1)).join(" ");
      svg.replaceChildren();
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", coords);
      svg.appendChild(line);
      svg.setAttribute("aria-label", svg.getAttribute("aria-label").split(";")[0] + "; latest " + (pts.length ? pts[pts.length - 1].toFixed(1) : "0"));
    });
  }
  async function tick() {
    try {
      const r = await fetch("/console/api/overview", { credentials: "same-origin", headers: { accept: "application/json" } });
      if (r.status === 401) { window.location = "/console/login"; return; }
      if (!r.ok) return;
      const d = await r.json();
      document.querySelectorAll("[data-k]").forEach((el) => {
        if (d[el.dataset.k] !== undefined && d[el.dataset.k] !== null) el.textContent = d[el.dataset.k];
      });
      const now = Date.now() / 1000;
      if (last) {
        const dt = Math.max(0.5, now - last.t);
        series.rps.push(Math.max(0, (d.requests - last.requests) / dt));
        series.refused.push(Math.max(0, (d.refused - last.refused) / dt));
        for (const k in series) if (series[k].length > 90) series[k].shift();
        draw();
      }
      last = { t: now, requests: d.requests, refused: d.refused };
    } catch (_) { /* the next tick tries again */ }
  }
  tick();
  setInterval(tick, 2000);
})();
