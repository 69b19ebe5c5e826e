// Progressive enhancement of the screening questions: say as the answers change whether a PIA is
// recommended (any yes) or not indicated (every answer no). The server decides again when the form is posted.
(function () {
  "use strict";
  document.querySelectorAll("form[data-screening-form], form.pia-step-form[data-step='screening']").forEach(function (form) {
    var output = form.querySelector("[data-screening-result]");
    if (!output) { return; }
    var questions = form.querySelectorAll(".pia-screening-question");
    function update() {
      var answered = 0, yes = 0;
      questions.forEach(function (question) {
        var checked = question.querySelector("input[data-screening-answer]:checked");
        if (checked) { answered += 1; if (checked.value === "yes") { yes += 1; } }
      });
      output.className = "pia-screening-result small mb-0";
      if (yes > 0) {
        output.textContent = "A PIA is recommended: " + yes + " of " + questions.length + " answers are yes.";
        output.classList.add("alert", "alert-primary", "py-2");
      } else if (answered === questions.length) {
        output.textContent = "Every answer is no: a PIA is not indicated. You can still create one.";
        output.classList.add("alert", "alert-secondary", "py-2");
      } else {
        output.textContent = "";
      }
    }
    form.addEventListener("change", update);
    update();
  });
})();
