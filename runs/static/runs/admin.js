// Accessibility repairs of stock admin widgets, for every admin page
// (runs/_admin_head.html).
// The filter boxes of filter_horizontal (SelectFilter2.js) are labelled by an icon
// <span aria-label="…">; aria-label on a span without a role is not allowed
// (axe-core aria-prohibited-attr): give the icon the role of an image.
(function () {
  "use strict";
  function repair() {
    document.querySelectorAll("span.search-label-icon[aria-label]:not([role])")
      .forEach(function (icon) { icon.setAttribute("role", "img"); });
  }
  // SelectFilter2 builds its boxes in its own load handler: repair after it
  window.addEventListener("load", function () { window.setTimeout(repair, 0); });
})();
