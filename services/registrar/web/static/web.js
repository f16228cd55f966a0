// Web faces: the station's kind switch, copy button and idle reset. Everything works without it.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // the second factor's label follows the chosen kind
    var label = document.getElementById("factor-label");
    document.querySelectorAll('input[name="kind"]').forEach(function (r) {
      r.addEventListener("change", function () { if (label && r.checked) label.textContent = r.dataset.factor; });
    });
    // copy the certificate number
    document.querySelectorAll("button[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var el = document.getElementById(b.dataset.copy), out = b.parentElement.querySelector(".copied");
        var text = el ? el.textContent.trim() : "";
        var done = function () { if (out) out.textContent = "Đã sao chép"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () {});
        } else {
          var range = document.createRange(); range.selectNodeContents(el);
          var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
          try { document.execCommand("copy"); done(); } catch (e) { /* selected: Ctrl+C works */ }
        }
      });
    });
    // a shared screen: back to a blank form after some idle time
    var idle = parseInt(document.body.dataset.idle || "0", 10);
    if (idle > 0) {
      var timer, reset = function () { clearTimeout(timer); timer = setTimeout(function () { window.location.replace("/station"); }, idle * 1000); };
      ["keydown", "pointerdown", "input", "scroll"].forEach(function (e) { document.addEventListener(e, reset, true); });
      reset();
    }
  });
})();
