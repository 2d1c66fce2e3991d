// Submits the page's form#autosubmit once the page has loaded: the authorization response in
// response_mode=form_post (oidc::authorize::form_post_page). A static script of this server, so
// that the page keeps the strict CSP (script-src 'self', no inline script). Without JavaScript
// the form's button does the same.
(function () {
  "use strict";
  var form = document.getElementById("autosubmit");
  if (form) { form.submit(); }
})();
