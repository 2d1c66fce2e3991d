// Every page's script (no inline script: the pages' CSP allows only this site's files).
// 1. Times: each <time data-local datetime="..."> shows UTC from the server, which does not
//    know the viewer's time zone; here it becomes the viewer's own time zone and language.
// 2. Security info: while the page is open it asks GET /me/security-info/devices/state
//    every few seconds, and when the user's phones change (one enrolled, phone sign-in
//    enabled, one approved or removed) it loads the page again, saying a new one was added.
// 3. Tables: each cell of a table in <main> gets its column's heading as data-label, and the
//    table the class "stack": on a narrow screen (style.css) each row is then one block of
//    "Heading: value" lines instead of columns wider than the phone.
(function () {
  "use strict";
  function localTimes() {
    var nodes = document.querySelectorAll("time[data-local]");
    for (var i = 0; i < nodes.length; i++) {
      var at = new Date(nodes[i].getAttribute("datetime"));
      if (isNaN(at.getTime())) { continue; }
      var sameDay = new Date().toDateString() === at.toDateString();
      var opts = sameDay ? { timeStyle: "short" } : { dateStyle: "medium", timeStyle: "short" };
      try {
        nodes[i].textContent = new Intl.DateTimeFormat(undefined, opts).format(at) +
          (sameDay ? " today" : "");
        nodes[i].setAttribute("title", at.toString());
      } catch (e) { /* the UTC text stays */ }
    }
  }

  function watchDevices() {
    var list = document.querySelector("[data-devices-state]");
    if (!list) { return; }
    var seen = list.getAttribute("data-devices-state");
    var count = parseInt(seen.split(":")[0], 10) || 0;
    var url = list.getAttribute("data-devices-state-url");
    var tries = 0;
    function check() {
      tries += 1;
      // Half an hour, then the page stops asking (reload to start again).
      if (tries > 900) { return; }
      fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      }).then(function (body) {
        if (body.state === seen) { setTimeout(check, 2000); return; }
        var now = parseInt(String(body.state).split(":")[0], 10) || 0;
        // Never a reload: the page with the QR code is the answer to a form post.
        var added = now > count || window.location.search.indexOf("added=1") >= 0;
        window.location.assign("/me/security-info" + (added ? "?added=1" : ""));
      }).catch(function () { setTimeout(check, 5000); });
    }
    setTimeout(check, 2000);
  }

  function stackTables() {
    var tables = document.querySelectorAll("main table");
    for (var t = 0; t < tables.length; t++) {
      var table = tables[t];
      if (!table.tHead || !table.tHead.rows.length) { continue; }
      var heads = table.tHead.rows[0].cells;
      for (var b = 0; b < table.tBodies.length; b++) {
        var rows = table.tBodies[b].rows;
        for (var r = 0; r < rows.length; r++) {
          var cells = rows[r].cells;
          for (var c = 0; c < cells.length && c < heads.length; c++) {
            if (!cells[c].hasAttribute("data-label")) {
              cells[c].setAttribute("data-label", heads[c].textContent.trim());
            }
          }
        }
      }
      table.classList.add("stack");
    }
  }

  function start() { localTimes(); stackTables(); watchDevices(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
