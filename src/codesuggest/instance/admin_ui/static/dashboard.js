// Draws the dashboard's charts with Chart.js from the numbers the page embeds
// (#dashboard-data); the tables beside each chart list the same numbers.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const colors = { direct: "#1f78b4", monolith: "#a6cee3", shown: "#b2b2b2", accepted: "#33a02c",
    rejected: "#e31a1c", rate: "#6a3d9a", p50: "#1f78b4", p95: "#ff7f00" };
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  function make(id, config) {
    const canvas = document.getElementById(id);
    if (canvas) { new Chart(canvas, config); }
  }

  make("chart-paths", {
    type: "bar",
    data: { labels: data.paths.days, datasets: [
      { label: "direct", data: data.paths.direct, backgroundColor: colors.direct },
      { label: "through the instance", data: data.paths.monolith, backgroundColor: colors.monolith },
    ] },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });

  function feedback(id, rows) {
    make(id, {
      data: { labels: rows.keys, datasets: [
        { type: "bar", label: "shown", data: rows.shown, backgroundColor: colors.shown },
        { type: "bar", label: "accepted", data: rows.accepted, backgroundColor: colors.accepted },
        { type: "bar", label: "rejected", data: rows.rejected, backgroundColor: colors.rejected },
        { type: "line", label: "acceptance rate (%)", data: rows.rate, yAxisID: "rate",
          borderColor: colors.rate, backgroundColor: colors.rate },
      ] },
      options: { scales: { y: { beginAtZero: true },
        rate: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } } } },
    });
  }
  feedback("chart-languages", data.languages);
  feedback("chart-clients", data.clients);

  make("chart-latency", {
    type: "line",
    data: { labels: data.latency.days, datasets: [
      { label: "p50 (ms)", data: data.latency.p50, borderColor: colors.p50, backgroundColor: colors.p50 },
      { label: "p95 (ms)", data: data.latency.p95, borderColor: colors.p95, backgroundColor: colors.p95 },
    ] },
    options: { scales: { y: { beginAtZero: true } } },
  });

  const seats = data.seats;
  make("chart-seats", {
    type: "bar",
    data: { labels: ["purchased", "assigned", "in use"], datasets: [
      { label: "seats", data: [seats.purchased, seats.assigned, seats.active],
        backgroundColor: [colors.shown, colors.direct, colors.accepted] },
    ] },
    options: { indexAxis: "y", plugins: { legend: { display: false } },
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
})();
