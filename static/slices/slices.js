// Draws the trend figure the server built (slices/charts.py) and embedded with
// json_script, as static/prompts/charts.js does. No inline script: the CSP forbids it.
(function () {
  "use strict";
  var data = document.getElementById("slices-figure");
  var target = document.getElementById("slices-chart");
  if (!data || !target || !window.Plotly) { return; }
  var figure = JSON.parse(data.textContent);
  window.Plotly.newPlot(target, figure.data, figure.layout, {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["lasso2d", "select2d"]
  });
})();
