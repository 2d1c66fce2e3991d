// The number page: asks GET /signin/wait/status (this browser's sign-in, long-poll) for news,
// counts down the request's lifetime (the phone shows the same), says each wrong number
// entered on the phone, and when the phone has answered (or the request ended) submits the
// page's form, which signs the browser in or shows the outcome. Without JavaScript the form's
// button does the same by hand.
(function () {
  "use strict";
  var page = document.querySelector("[data-request-id]");
  var form = document.getElementById("complete-form");
  var status = document.getElementById("wait-status");
  var wrongText = document.getElementById("wrong-tries");
  var secondsText = document.getElementById("seconds-left");
  var countdown = document.getElementById("countdown");
  if (!page || !form) { return; }
  var wrong = parseInt(page.getAttribute("data-wrong") || "0", 10) || 0;
  var failures = 0;
  // Once the user submits a form here (resend), this page is done: never race that navigation.
  var leaving = false;
  document.addEventListener("submit", function () { leaving = true; }, true);
  function finish(text) {
    if (leaving) { return; }
    leaving = true;
    if (status && text) { status.textContent = text; }
    form.submit();
  }

  // The countdown: from the seconds the server said the request has left (not this device's
  // clock), corrected by each status answer.
  var deadline = Date.now() + 1000 * (parseInt(page.getAttribute("data-expires-in") || "0", 10) || 0);
  function minutesAndSeconds(secs) {
    var m = Math.floor(secs / 60), s = secs % 60;
    return m > 0 ? m + " min " + (s < 10 ? "0" : "") + s + " s" : s + " s";
  }
  function tick() {
    if (leaving) { return; }
    var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    if (countdown) {
      countdown.textContent = left > 0 ? "Time left to answer: " + minutesAndSeconds(left) : "The request has expired.";
    }
    if (left <= 0) { finish("The request has expired."); return; }
    setTimeout(tick, 1000);
  }
  if (secondsText) { tick(); }

  function poll() {
    if (leaving) { return; }
    fetch("/signin/wait/status?wrong=" + wrong, {
      credentials: "same-origin", cache: "no-store"
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (body) {
      failures = 0;
      if (leaving) { return; }
      if (typeof body.expires_in_secs === "number" && body.status === "pending") {
        deadline = Date.now() + 1000 * body.expires_in_secs;
      }
      if (body.wrong_attempts > wrong) {
        wrong = body.wrong_attempts;
        if (wrongText && body.message) { wrongText.textContent = body.message; }
      }
      if (body.status === "pending") { poll(); return; }
      finish(body.status === "approved" ? "Approved. Signing you in\u2026" : "The request has ended.");
    }).catch(function () {
      failures += 1;
      if (leaving) { return; }
      if (failures > 20) { finish(""); return; }
      setTimeout(poll, Math.min(1000 * failures, 5000));
    });
  }
  poll();

  // Phishing-resistant sign-in (PROTOCOL.md §5.9): hand the challenge to the Authenticator's
  // loopback listener on this device. The browser adds this page's real origin (the Origin
  // header, which no script can set); the Authenticator approves only for the server's own.
  //
  // Chrome's Local Network Access asks the user once whether this (public) page may reach
  // apps on this device, and holds the request until they answer; "Block" sticks, with no
  // prompt again. The permission's state ("loopback-network") says which case this is, so the
  // page can say what to do. Where the Permissions API does not know that name, the page
  // only tries and retries.
  var challenge = page.getAttribute("data-browser-challenge");
  var listener = page.getAttribute("data-browser-listener");
  var seen = document.getElementById("browser-status");
  if (!challenge || !listener) { return; }
  var SEEN = "The Authenticator on this device has seen this page: approve there.";
  var ASKING = "Your browser will ask to let this page reach the Authenticator on this device: choose Allow.";
  var NOT_SEEN = "Open the Authenticator on this device: it has not seen this page yet.";
  var NOT_SEEN_PROMPT = NOT_SEEN + " If your browser asks to let this page reach the Authenticator on this device, choose Allow.";
  var NOT_SEEN_UNKNOWN = NOT_SEEN + " If your browser asks to let this page reach apps or devices on this device, allow it.";
  var BLOCKED = "Your browser blocks this page from reaching the Authenticator on this device, so it cannot " +
    "approve this sign-in. To allow it: open this site's settings (the icon at the left of the address bar), " +
    "set \u201cApps on device\u201d (local network access) to Allow, and reload this page.";
  var permission = null; // the PermissionStatus, where the browser knows the name
  var done = false;      // seen: nothing more to do
  var inFlight = false;
  var tries = 0;
  var retry = null;
  function say(text) { if (seen) { seen.textContent = text; } }
  function state() { return permission ? permission.state : "unknown"; }
  function notSeen() {
    if (state() === "denied") { return BLOCKED; }
    if (state() === "prompt") { return NOT_SEEN_PROMPT; }
    if (state() === "granted") { return NOT_SEEN; }
    return NOT_SEEN_UNKNOWN;
  }
  function announce() {
    if (leaving || done || inFlight) { return; }
    if (retry) { clearTimeout(retry); retry = null; }
    // Blocked: a request would fail without asking anyone. Wait until the user allows it.
    if (state() === "denied") { say(BLOCKED); return; }
    inFlight = true;
    var from = state();
    // A request still out after a moment is one the browser holds while it asks the user.
    var asking = setTimeout(function () { if (inFlight && state() === "prompt") { say(ASKING); } }, 700);
    fetch(listener, {
      method: "POST", mode: "cors", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "text/plain" }, body: challenge
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      done = true;
      say(SEEN);
    }).catch(function () {
      say(notSeen());
    }).then(function () {
      clearTimeout(asking);
      inFlight = false;
      if (!done) { later(from); }
    });
  }
  function later(from) {
    if (leaving || done || state() === "denied") { return; }
    tries += 1;
    if (tries >= 120) { return; }
    // Allowed while that request was out, and it was lost: again at once.
    var wait = (from !== "granted" && state() === "granted") ? 0 : Math.min(1000 * tries, 5000);
    retry = setTimeout(announce, wait);
  }
  function changed() {
    if (leaving || done) { return; }
    if (state() === "denied") {
      if (retry) { clearTimeout(retry); retry = null; }
      say(BLOCKED);
    } else if (!inFlight) {
      // Allowed (the prompt, the site's settings, a policy), or asked again: at once. A
      // request still out settles first (`later`).
      announce();
    }
  }
  var query = null;
  try {
    if (navigator.permissions && navigator.permissions.query) {
      query = navigator.permissions.query({ name: "loopback-network" });
    }
  } catch (e) { query = null; }
  if (!query) { announce(); return; }
  query.then(function (status) {
    permission = status;
    status.addEventListener("change", changed);
    announce();
  }, function () {
    // This browser does not know the permission: try and retry, as before.
    announce();
  });
})();
