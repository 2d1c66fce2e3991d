// The number page: waits for the phone's answer by long-poll on GET /api/v1/signin/{id}?wait=25,
// then submits the page's "Continue" form, which signs the browser in or shows the outcome.
// Without JavaScript the same form works by hand.
(function () {
  "use strict";
  var page = document.querySelector("[data-request-id]");
  var form = document.getElementById("complete-form");
  var status = document.getElementById("wait-status");
  if (!page || !form) { return; }
  var id = page.getAttribute("data-request-id");
  var failures = 0;
  // Once the user submits a form here (resend), this page is done: never race that navigation.
  var leaving = false;
  document.addEventListener("submit", function () { leaving = true; }, true);
  function poll() {
    if (leaving) { return; }
    fetch("/api/v1/signin/" + encodeURIComponent(id) + "?wait=25", {
      credentials: "same-origin", cache: "no-store"
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (body) {
      failures = 0;
      if (leaving) { return; }
      if (body.status === "pending") { poll(); return; }
      if (status) {
        status.textContent = body.status === "approved" ? "Approved. Signing you in…" : "The request has ended.";
      }
      form.submit();
    }).catch(function () {
      failures += 1;
      if (leaving) { return; }
      if (failures > 20) { form.submit(); return; }
      setTimeout(poll, Math.min(1000 * failures, 5000));
    });
  }
  poll();

  // Phishing-resistant sign-in (PROTOCOL.md §5.9): hand the challenge to the Authenticator's
  // loopback listener on this device. The browser adds this page's real origin (the Origin
  // header, which no script can set); the Authenticator approves only for the server's own.
  var challenge = page.getAttribute("data-browser-challenge");
  var listener = page.getAttribute("data-browser-listener");
  var seen = document.getElementById("browser-status");
  function announce(tries) {
    if (leaving || !challenge || !listener) { return; }
    fetch(listener, {
      method: "POST", mode: "cors", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "text/plain" }, body: challenge
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      if (seen) { seen.textContent = "The Authenticator on this device has seen this page: approve there."; }
    }).catch(function () {
      if (seen) { seen.textContent = "Open the Authenticator on this device: it has not seen this page yet."; }
      if (tries < 120) { setTimeout(function () { announce(tries + 1); }, Math.min(1000 * (tries + 1), 5000)); }
    });
  }
  announce(0);
})();
