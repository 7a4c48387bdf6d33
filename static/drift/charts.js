// Draws the drift page's plotly figure that the server built (drift/charts.py) and embedded
// with json_script. plotly.js is served from our static files; nothing is fetched elsewhere.
(function () {
  "use strict";
  var data = document.getElementById("drift-figure");
  var target = document.getElementById("drift-chart");
  if (!data || !target || !window.Plotly) { return; }
  var figure = JSON.parse(data.textContent);
  window.Plotly.newPlot(target, figure.data, figure.layout, {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["lasso2d", "select2d"]
  });
})();
