// Trace page: copy the API's JSON, mark the chosen span, keyboard navigation.
(function () {
  "use strict";
  var status = document.getElementById("copy-status");
  var copyButton = document.getElementById("copy-json");

  function fallbackCopy(text) {
    // navigator.clipboard needs a secure context (https or localhost).
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(area);
    return ok;
  }

  if (copyButton) {
    copyButton.addEventListener("click", function () {
      status.textContent = "Fetching…";
      fetch(copyButton.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (text) {
          var pretty = JSON.stringify(JSON.parse(text), null, 2);
          copyButton.dataset.copied = pretty;  // read back by browser tests
          var done = function () { status.textContent = "Copied the trace as JSON (" + pretty.length.toLocaleString() + " characters)."; };
          if (navigator.clipboard && window.isSecureContext) {
            return navigator.clipboard.writeText(pretty).then(done, function () {
              if (fallbackCopy(pretty)) done(); else status.textContent = "Copy blocked by the browser; use Open JSON.";
            });
          }
          if (fallbackCopy(pretty)) done(); else status.textContent = "Copy blocked by the browser; use Open JSON.";
        })
        .catch(function (error) { status.textContent = "Could not fetch the trace: " + error.message; });
    });
  }

  var rows = document.getElementById("span-rows");
  function select(link) {
    rows.querySelectorAll("[aria-current]").forEach(function (el) { el.removeAttribute("aria-current"); });
    link.setAttribute("aria-current", "true");
    // The URL names the span, so a reload or a shared link opens the same panel.
    history.replaceState(null, "", link.getAttribute("href"));
  }
  if (rows) {
    rows.addEventListener("click", function (event) {
      var link = event.target.closest(".wf-row");
      if (link) select(link);
    });
    rows.addEventListener("keydown", function (event) {
      if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
      var links = Array.from(rows.querySelectorAll(".wf-row"));
      var index = links.indexOf(document.activeElement);
      if (index < 0) return;
      var next = links[index + (event.key === "ArrowDown" ? 1 : -1)];
      if (next) { event.preventDefault(); next.focus(); }
    });
  }
  document.addEventListener("keydown", function (event) {
    if (/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName) || event.metaKey || event.ctrlKey || event.altKey) return;
    var target = { j: "next-trace", k: "prev-trace" }[event.key];
    var link = target && document.getElementById(target);
    if (link) link.click();
  });
})();
