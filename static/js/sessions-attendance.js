// Progressive enhancement of the attendance form: "Mark the rest present" ticks "Present" for every invited
// child on the page who has no answer yet, keeping any answer given ("Absent" included), instead of sending
// the form (without JavaScript the button asks the server to do the same), and a second tap on "Save
// attendance" while the first is on its way sends nothing more (the server records a repeated submission
// once anyway).
(function () {
  "use strict";
  document.querySelectorAll("form.attendance-form").forEach(function (form) {
    var button = form.querySelector("[data-attendance-all-present]");
    var status = form.querySelector(".attendance-status");
    if (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        var marked = 0;
        form.querySelectorAll(".attendance-expected input[type=radio][name^='present_'][value='yes']").forEach(function (radio) {
          var answered = form.querySelector("input[type=radio][name='" + radio.name + "']:checked");
          if (answered) { return; }
          radio.checked = true;
          marked += 1;
          var row = radio.closest(".attendance-row");
          if (row) { row.classList.remove("table-danger"); }
        });
        if (status) {
          status.textContent = marked === 0 ? "Every invited child already has an answer: nothing was changed." :
            (marked === 1 ? "1 child not yet answered is" : marked + " children not yet answered are") +
            " marked present. Change anyone who was absent, then save.";
        }
      });
    }
    var sending = false;
    form.addEventListener("submit", function (event) {
      if (sending) { event.preventDefault(); return; }
      sending = true;
    });
    // Back to the page from the browser's cache: the earlier submission is over.
    window.addEventListener("pageshow", function () { sending = false; });
  });
})();
