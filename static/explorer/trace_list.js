// Trace list: keep shared URLs short and show the custom range only when chosen.
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form) return;
  // Empty inputs would put "name=&user_id=&..." into every pushed URL.
  document.body.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt !== form) return;
    var data = event.detail.formData;
    Array.from(data.keys()).forEach(function (key) {
      var kept = data.getAll(key).filter(function (value) { return value !== ""; });
      data.delete(key);
      kept.forEach(function (value) { data.append(key, value); });
    });
    if (data.get("range") !== "custom") { data.delete("from"); data.delete("to"); }
    if (data.get("mode") === "text") data.delete("mode");
    if (data.get("sort") === "-time") data.delete("sort");
  });
  var custom = form.querySelector(".custom-range");
  form.addEventListener("change", function (event) {
    if (event.target.name === "range") custom.hidden = event.target.value !== "custom";
  });
  // "/" focuses search, as in most log and trace tools.
  document.addEventListener("keydown", function (event) {
    if (event.key === "/" && !/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) {
      event.preventDefault();
      document.getElementById("f-q").focus();
    }
  });
})();
