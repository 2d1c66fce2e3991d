// Every page's script (no inline script: the pages' CSP allows only this site's files).
// 1. Times: each <time data-local datetime="..."> shows UTC from the server, which does not
//    know the viewer's time zone; here it becomes the viewer's own time zone and language.
// 2. Security info: while the page is open it asks GET /me/security-info/devices/state
//    every few seconds, and when the user's phones change (one enrolled, phone sign-in
//    enabled, one approved or removed) it loads the page again, saying a new one was added.
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

  function start() { localTimes(); watchDevices(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
