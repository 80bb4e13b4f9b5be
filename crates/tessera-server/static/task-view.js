// The task page's annotation overlay: the SVG is drawn server-side in the image's pixels; this
// gives it the image's own coordinate system (its natural size) once the image is known, and
// keeps labels and points a readable screen size however the image is scaled.
(function () {
  "use strict";
  function fit(svg, img) {
    if (!img.naturalWidth || !img.clientWidth) return;
    svg.setAttribute("viewBox", "0 0 " + img.naturalWidth + " " + img.naturalHeight);
    svg.style.setProperty("--px", String(img.naturalWidth / img.clientWidth));
    svg.classList.add("ready");
  }
  function init() {
    var svg = document.getElementById("annotation-overlay");
    var img = document.getElementById("attachment-image");
    if (!svg || !img) return;
    var refit = function () { fit(svg, img); };
    if (img.complete) refit();
    img.addEventListener("load", refit);
    if (window.ResizeObserver) new ResizeObserver(refit).observe(img);
    else window.addEventListener("resize", refit);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
