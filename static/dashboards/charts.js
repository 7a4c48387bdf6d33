// Draws every chart the server built (dashboards/charts.py) and embedded with
// json_script, and makes points clickable: each point's customdata[0] is the explorer
// URL of the traces behind it. plotly.js comes from our own static files.
(function () {
  "use strict";
  var Plotly = window.Plotly;
  if (Plotly) {
    document.querySelectorAll("[data-figure]").forEach(function (target) {
      var data = document.getElementById(target.getAttribute("data-figure"));
      if (!data) { return; }
      var figure = JSON.parse(data.textContent);
      Plotly.newPlot(target, figure.data, figure.layout, {
        responsive: true,
        displaylogo: false,
        modeBarButtonsToRemove: ["lasso2d", "select2d"]
      }).then(function () {
        target.setAttribute("data-rendered", "true");
      });
      target.on("plotly_click", function (event) {
        var point = event && event.points && event.points[0];
        var custom = point && point.customdata;
        var url = Array.isArray(custom) ? custom[0] : custom;
        if (url) { window.location.assign(url); }
      });
    });
  }
  // Time range: typing a from/to means "custom"; a preset sends no from/to (the filter
  // language refuses both at once).
  var range = document.getElementById("f-range");
  var from = document.getElementById("f-from");
  var to = document.getElementById("f-to");
  if (range && from && to) {
    [from, to].forEach(function (input) {
      input.addEventListener("change", function () { range.value = "custom"; });
    });
    range.form.addEventListener("submit", function () {
      var custom = range.value === "custom";
      from.disabled = !custom;
      to.disabled = !custom;
    });
  }
})();
