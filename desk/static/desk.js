// Staff desk: live alerts (Server-Sent Events) and print buttons.
// Pages work without this file; it only saves a reload. No inline script:
// the Content-Security-Policy allows only files served by the desk.
(function () {
  "use strict";

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest ? ev.target.closest("[data-print]") : null;
    if (t) {
      ev.preventDefault();
      window.print();
    }
  });

  var list = document.getElementById("alert-list");
  if (!list || !window.EventSource) {
    return;
  }
  var count = document.getElementById("alert-count");
  var status = document.getElementById("live-status");
  var base = document.title.replace(/^\(\d+\)\s*/, "");
  var last = -1;

  function setTitle(n) {
    document.title = (n > 0 ? "(" + n + ") " : "") + base;
  }

  var es = new EventSource(list.getAttribute("data-live"));
  es.addEventListener("alerts", function (ev) {
    var data = JSON.parse(ev.data);
    // Keep what staff are typing in a note when the list is redrawn.
    var active = document.activeElement;
    var keep = active && active.id && list.contains(active) ? { id: active.id, value: active.value } : null;
    var notes = {};
    list.querySelectorAll("input[name=note]").forEach(function (i) { notes[i.id] = i.value; });
    list.innerHTML = data.html;
    list.querySelectorAll("input[name=note]").forEach(function (i) {
      if (notes[i.id]) { i.value = notes[i.id]; }
    });
    if (keep) {
      var again = document.getElementById(keep.id);
      if (again) { again.focus(); }
    }
    count.textContent = data.count;
    setTitle(data.count);
    if (last >= 0 && data.count > last) {
      status.textContent = "New alert: " + data.count + " open.";
    }
    last = data.count;
  });
  es.addEventListener("error", function () {
    status.textContent = "Live updates paused; reconnecting. Reload the page if this stays.";
  });
  es.addEventListener("open", function () {
    status.textContent = "This list updates by itself when a new alert comes in.";
  });
})();
