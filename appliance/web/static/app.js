// Small helpers for the htmx enhancements (no inline scripts: the CSP forbids them).
// htmx does not swap error answers: show their text in the notice area instead,
// so a refused change (expired form, lost session) never fails silently.
document.addEventListener("htmx:responseError", function (event) {
  var flash = document.getElementById("flash");
  var xhr = event.detail.xhr;
  if (!flash || !xhr) { return; }
  var type = xhr.getResponseHeader("content-type") || "";
  flash.textContent = type.indexOf("text/plain") === 0 ? xhr.responseText : (xhr.status + " " + xhr.statusText);
  flash.hidden = false;
});
