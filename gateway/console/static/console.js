// mpcgate console: the only script. Draws the page's charts (data in #charts) with
// the vendored Chart.js, and follows a running job's progress (server-sent events
// from WatchJob) until it ends, then reloads the page to show its results.
"use strict";

function drawCharts() {
  const data = document.getElementById("charts");
  if (!data || typeof Chart === "undefined") return;
  const charts = JSON.parse(data.textContent);
  for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
    const spec = charts[Number(canvas.dataset.chart)];
    if (spec.type === "xy") {  // a curve through points (ROC): both axes from 0 to 1
      new Chart(canvas, {
        type: "scatter",
        data: { datasets: spec.series.map((s) => ({ label: s.name, data: s.points.map(([x, y]) => ({ x, y })),
                                                    showLine: true, pointRadius: 2 })) },
        options: { animation: false, responsive: true, scales: { x: { min: 0, max: 1 }, y: { min: 0, max: 1 } } },
      });
      continue;
    }
    new Chart(canvas, {
      type: spec.type,
      data: {
        labels: spec.labels,
        datasets: spec.series.map((s) => ({ label: s.name, data: s.values, spanGaps: false, pointRadius: 2 })),
      },
      options: {
        animation: false, responsive: true, scales: { y: { beginAtZero: true } },
        plugins: { legend: { display: spec.series.length > 1 } },
      },
    });
  }
}

function followProgress() {
  const status = document.getElementById("status");
  if (!status || !status.dataset.events) return;
  const source = new EventSource(status.dataset.events);
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    document.getElementById("state").textContent = event.state;
    document.getElementById("state").className = "state " + event.state.toLowerCase();
    document.getElementById("progress").value = event.percent;
    document.getElementById("phase").textContent = event.phase;
  };
  source.addEventListener("end", () => { source.close(); window.location.reload(); });
  source.onerror = () => source.close();
}

document.addEventListener("DOMContentLoaded", () => { drawCharts(); followProgress(); });
