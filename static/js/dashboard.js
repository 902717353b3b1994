// alweb dashboard behaviour: charts drawn from JSON the server put in the page (json_script), and the threshold
// slider's instant feedback (its value and the highlighted histogram bars). htmx does the server round trips.
(function () {
  "use strict";

  const drawn = new WeakSet();

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function readJson(id) {
    const el = id && document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function fmt(x) {
    return Number(x).toFixed(4);
  }

  // Screenshots and slow machines get the final picture at once.
  const common = { animation: false, responsive: true, maintainAspectRatio: false };

  function learningCurve(canvas, points) {
    // Only points measured on enough human test labels; x = every label spent (training + validation + test).
    const shown = points.filter((p) => p.meaningful);
    const series = (key) => shown.filter((p) => p[key] !== null && p[key] !== undefined).map((p) => ({ x: p.labels_spent, y: p[key] }));
    const bound = (key, i) => shown.filter((p) => p[key]).map((p) => ({ x: p.labels_spent, y: p[key][i] }));
    const band = { borderWidth: 0, pointRadius: 0, backgroundColor: "rgba(183, 121, 31, 0.15)", tension: 0.2 };
    return new Chart(canvas, {
      type: "line",
      data: {
        datasets: [
          { label: "Accuracy", data: series("accuracy"), borderColor: css("--accent"), backgroundColor: css("--accent"), pointRadius: 4, tension: 0.2 },
          { label: "Macro-F1", data: series("macro_f1"), borderColor: "#b7791f", backgroundColor: "#b7791f", pointStyle: "triangle", pointRadius: 5, tension: 0.2 },
          { label: "Macro-F1 95% interval", data: bound("macro_f1_ci", 0), fill: false, ...band },
          { label: "Macro-F1 95% interval (high)", data: bound("macro_f1_ci", 1), fill: "-1", ...band },
          // Detection projects: COCO mAP (their accuracy and macro-F1 are null, so only these are drawn).
          { label: "mAP@0.5", data: series("map_50"), borderColor: css("--accent"), backgroundColor: css("--accent"), pointRadius: 4, tension: 0.2 },
          { label: "mAP@0.5:0.95", data: series("map"), borderColor: "#b7791f", backgroundColor: "#b7791f", pointStyle: "triangle", pointRadius: 5, tension: 0.2 },
        ],
      },
      options: {
        ...common,
        plugins: {
          legend: {
            labels: {
              usePointStyle: true,
              // A series the project has no value for (mAP for a classifier, accuracy for a detector) stays out.
              filter: (item, data) => !item.text.endsWith("(high)") && data.datasets[item.datasetIndex].data.length > 0,
            },
          },
        },
        scales: {
          // From zero labels, with room on the right: one point (the first model) still reads as "this good,
          // with this many labels", instead of sitting on the chart's edge.
          x: { type: "linear", min: 0, grace: "10%", title: { display: true, text: "Labels spent (training + validation + test)" } },
          y: { suggestedMin: 0, suggestedMax: 1, title: { display: true, text: "Score on the test set" } },
        },
      },
    });
  }

  // A simulation's report: each arm's mean macro-F1 curve against labels spent, on the learning curve's axes.
  const ARM_COLOURS = ["#6b7280", "#2563eb", "#b7791f", "#15803d", "#9333ea", "#dc2626", "#0891b2"];

  function comparison(canvas, arms) {
    return new Chart(canvas, {
      type: "line",
      data: {
        datasets: arms.map((arm, i) => ({
          label: arm.label,
          data: arm.points,
          borderColor: ARM_COLOURS[i % ARM_COLOURS.length],
          backgroundColor: ARM_COLOURS[i % ARM_COLOURS.length],
          borderDash: arm.label === "random" ? [6, 4] : [],
          pointRadius: 2,
          tension: 0.2,
        })),
      },
      options: {
        ...common,
        scales: {
          x: { type: "linear", title: { display: true, text: "Labels spent (training + validation + test)" } },
          y: { suggestedMin: 0, suggestedMax: 1, title: { display: true, text: "Mean macro-F1 on the test labels" } },
        },
      },
    });
  }

  function balance(canvas, labeled, selected) {
    const labels = [...new Set([...(labeled || []).map((r) => r.label), ...(selected || []).map((r) => r.label)])];
    const count = (rows) => labels.map((l) => ((rows || []).find((r) => r.label === l) || { count: 0 }).count);
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels,
        datasets: [
          { label: "Labeled items", data: count(labeled), backgroundColor: css("--accent") },
          { label: "Selected items (predicted label)", data: count(selected), backgroundColor: "#b7791f" },
        ],
      },
      options: { ...common, scales: { y: { beginAtZero: true, title: { display: true, text: "Items" } } } },
    });
  }

  // A bar holds items that reach the threshold when its upper edge is above it.
  function barColours(hist, threshold) {
    const on = css("--accent");
    const off = css("--bar-muted");
    return hist.counts.map((_, i) => (threshold === null || hist.edges[i + 1] > threshold ? on : off));
  }

  function histogram(canvas, hist) {
    const input = canvas.dataset.thresholdInput && document.getElementById(canvas.dataset.thresholdInput);
    const fixed = canvas.dataset.threshold !== undefined ? parseFloat(canvas.dataset.threshold) : null;
    const threshold = input ? parseFloat(input.value) : fixed;
    const chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels: hist.counts.map((_, i) => `${fmt(hist.edges[i])}–${fmt(hist.edges[i + 1])}`),
        datasets: [{ label: "Items", data: hist.counts, backgroundColor: barColours(hist, threshold), barPercentage: 1, categoryPercentage: 1 }],
      },
      options: {
        ...common,
        plugins: { legend: { display: false } },
        scales: {
          x: { title: { display: true, text: "Uncertainty (higher = more informative)" }, ticks: { maxTicksLimit: 8 } },
          y: { beginAtZero: true, title: { display: true, text: "Items" } },
        },
      },
    });
    chart.$hist = hist;
    return chart;
  }

  function draw(canvas) {
    if (drawn.has(canvas) || typeof Chart === "undefined") return;
    const data = readJson(canvas.dataset.source);
    if (!data) return;
    drawn.add(canvas);
    const kind = canvas.dataset.chart;
    if (kind === "learning-curve") learningCurve(canvas, data);
    else if (kind === "comparison") comparison(canvas, data);
    else if (kind === "balance") balance(canvas, data, readJson(canvas.dataset.source2));
    else if (kind === "histogram") histogram(canvas, data);
  }

  function init(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  // The slider: show its value and recolour the histogram at once; htmx asks the server for the counts.
  document.addEventListener("input", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.dataset.histogram) return;
    const output = document.querySelector(`output[for="${input.id}"]`);
    if (output) output.textContent = fmt(input.value);
    const canvas = document.getElementById(input.dataset.histogram);
    const chart = canvas && Chart.getChart(canvas);
    if (chart && chart.$hist) {
      chart.data.datasets[0].backgroundColor = barColours(chart.$hist, parseFloat(input.value));
      chart.update("none");
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    init(document);
    document.querySelectorAll("output[for]").forEach((output) => {
      const input = document.getElementById(output.htmlFor.value);
      if (input && input.dataset.histogram) output.textContent = fmt(input.value);
    });
  });
  document.addEventListener("htmx:load", (event) => init(event.detail.elt));
})();
