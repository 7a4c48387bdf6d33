/*! spyglass-feedback.js — end-user feedback for Spyglass, no dependencies.
 *
 *   <script src="https://SPYGLASS/static/spyglass-feedback.js" data-public-key="pk-sg-..."></script>
 *   <button data-spyglass-trace="TRACE_ID" data-spyglass-thumbs="up">👍</button>
 *
 * or from code: Spyglass.thumbs(traceId, true); Spyglass.event(traceId, "copy");
 *
 * Elements with data-spyglass-trace send on click: data-spyglass-thumbs="up|down",
 * data-spyglass-rating="1..5", data-spyglass-event="copy|regenerate|escalate|...".
 * Copying text inside an element with data-spyglass-copy="TRACE_ID" sends `copy`.
 * Uses the PUBLIC key only (safe in a page); the page's origin must be listed in the
 * server's SPYGLASS_FEEDBACK_CORS_ORIGINS. Failures are swallowed: feedback never
 * breaks the page.
 */
(function (window, document) {
  "use strict";
  var script = document.currentScript;
  var config = {
    host: script && (script.getAttribute("data-host") || new URL(script.src, window.location.href).origin),
    publicKey: script && script.getAttribute("data-public-key"),
  };

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (c) {
      return (c ^ (Math.random() * 16) >> (c / 4)).toString(16);
    });
  }

  function send(body) {
    if (!config.host || !config.publicKey || !body.trace_id) return Promise.resolve(null);
    // A client id makes a retried request count once on the server.
    body.id = body.id || uuid();
    return window
      .fetch(config.host.replace(/\/$/, "") + "/api/v1/feedback", {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        keepalive: true, // still delivered when the page is being closed (abandon, dwell)
        headers: { "Content-Type": "application/json", "X-Spyglass-Public-Key": config.publicKey },
        body: JSON.stringify(body),
      })
      .then(function (r) { return r.ok ? r.json() : null; })
      .catch(function () { return null; });
  }

  var Spyglass = {
    init: function (options) {
      if (options.host) config.host = options.host;
      if (options.publicKey) config.publicKey = options.publicKey;
      return Spyglass;
    },
    feedback: function (traceId, name, value, options) {
      options = options || {};
      return send({ trace_id: traceId, kind: "feedback", name: name, value: value === undefined ? null : value,
        comment: options.comment || null, tags: options.tags || undefined });
    },
    thumbs: function (traceId, up, comment) { return Spyglass.feedback(traceId, "user_thumbs", !!up, { comment: comment }); },
    rating: function (traceId, stars, comment) { return Spyglass.feedback(traceId, "user_rating", Number(stars), { comment: comment }); },
    event: function (traceId, name, value) {
      var body = { trace_id: traceId, kind: "event", name: name };
      if (name === "edit") body.text = value; else if (value !== undefined) body.value = value;
      return send(body);
    },
  };

  document.addEventListener("click", function (e) {
    var el = e.target.closest && e.target.closest("[data-spyglass-trace]");
    if (!el) return;
    var trace = el.getAttribute("data-spyglass-trace");
    var thumbs = el.getAttribute("data-spyglass-thumbs");
    var rating = el.getAttribute("data-spyglass-rating");
    var name = el.getAttribute("data-spyglass-event");
    if (thumbs) Spyglass.thumbs(trace, thumbs === "up");
    else if (rating) Spyglass.rating(trace, rating);
    else if (name) Spyglass.event(trace, name);
  });

  document.addEventListener("copy", function () {
    var selection = document.getSelection && document.getSelection();
    var node = selection && selection.anchorNode;
    var el = node && (node.nodeType === 1 ? node : node.parentElement);
    el = el && el.closest("[data-spyglass-copy]");
    if (el) Spyglass.event(el.getAttribute("data-spyglass-copy"), "copy");
  });

  window.Spyglass = Spyglass;
})(window, document);
