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
})();
