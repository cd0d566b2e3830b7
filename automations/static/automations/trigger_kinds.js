// The automation page's triggers: each block shows only the fields its kind
// uses (a schedule its cron and next run, an e-mail trigger its address, senders
// and subject; manual and API triggers nothing more). Without JavaScript every
// field shows, as before.
(function () {
  "use strict";
  var KINDS = {
    cron: ["schedule"],
    schedule_next_run: ["schedule"],
    last_fired_at: ["schedule"],
    address: ["email"],
    senders: ["email"],
    subject_pattern: ["email"],
  };

  function apply(block) {
    var select = block.querySelector("select[name$='-kind']");
    if (!select) return;
    block.setAttribute("data-kind", select.value);
    Object.keys(KINDS).forEach(function (name) {
      block.querySelectorAll(".form-row.field-" + name).forEach(function (row) {
        row.hidden = KINDS[name].indexOf(select.value) === -1;
      });
    });
  }

  function blocks() {
    return document.querySelectorAll(".trigger-inline .inline-related");
  }

  document.addEventListener("DOMContentLoaded", function () {
    blocks().forEach(apply);
  });
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches(".trigger-inline select[name$='-kind']")) {
      apply(target.closest(".inline-related"));
    }
  });
  // "Add another trigger" (Django's inlines.js sends formset:added)
  document.addEventListener("formset:added", function (event) {
    if (event.target.closest && event.target.closest(".trigger-inline")) {
      apply(event.target);
    }
  });
})();
