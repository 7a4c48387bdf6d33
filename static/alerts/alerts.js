// Alert pages: fill the rule form with the per-user cost example, and confirm a delete.
// Loaded with <script src> (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  var example = document.getElementById("use-example");
  var form = document.getElementById("rule-form");
  if (example && form) {
    example.addEventListener("click", function () {
      var fields = ["name", "measure", "agg", "group_by", "window_seconds", "operator", "warning_threshold",
        "alert_threshold", "min_observations", "no_data", "cooldown_seconds"];
      fields.forEach(function (name) {
        var input = form.elements.namedItem(name);
        var value = example.dataset[name.replace(/_/g, "")];
        if (input && value !== undefined) { input.value = value; }
      });
      form.elements.namedItem("name").focus();
    });
  }
  var del = document.getElementById("delete-form");
  if (del) {
    del.addEventListener("submit", function (event) {
      if (!window.confirm(del.dataset.confirm)) { event.preventDefault(); }
    });
  }
})();
