// The schedule and edit forms. Without JavaScript they work whole: every platform's gate is listed, "Check
// coverage" and "Find" re-show the form with everything kept, and the server checks it all on submit.
// With it: the chosen platform's gate is highlighted, the coverage follows the boxes ticked, and the
// hand-picked pupils' list follows what is typed. No inline script: the CSP forbids them.
(function () {
  "use strict";

  var platform = document.getElementById("id_platform");
  function highlight() {
    var cards = document.querySelectorAll(".platform-gate");
    for (var i = 0; i < cards.length; i += 1) {
      var chosen = cards[i].getAttribute("data-platform") === platform.value;
      cards[i].classList.toggle("shadow", chosen);
      cards[i].classList.toggle("opacity-50", !chosen && platform.value !== "");
    }
  }
  if (platform) {
    platform.addEventListener("change", highlight);
    highlight();
  }

  var form = document.querySelector("form[data-coverage-url]");
  if (!form || !window.fetch || !window.URLSearchParams) {
    return;
  }
  var coverage = document.getElementById("coverage");
  var chosen = document.getElementById("picker-chosen");
  var found = document.getElementById("picker-found");
  var search = document.getElementById("id_pupil_search");
  var buttons = form.querySelectorAll("[data-without-script]");
  for (var b = 0; b < buttons.length; b += 1) {
    buttons[b].hidden = true;
  }

  function purpose() {
    var field = form.elements.namedItem("purpose");
    return field && field.value ? field.value : form.getAttribute("data-purpose") || "";
  }

  function ticked(name, within) {
    var boxes = (within || form).querySelectorAll("input[name='" + name + "']:checked");
    var values = [];
    for (var i = 0; i < boxes.length; i += 1) {
      values.push(boxes[i].value);
    }
    return values;
  }

  // Answers can arrive out of order: only the latest request's answer is shown.
  function fetcher(url, show) {
    var latest = 0;
    return function (params) {
      latest += 1;
      var mine = latest;
      fetch(url + "?" + params.toString(), {
        credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store"
      }).then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      }).then(function (data) {
        if (mine === latest) {
          show(data);
        }
      }).catch(function () {
        // Leave the page as it is: the buttons come back, and the server checks on submit.
        for (var i = 0; i < buttons.length; i += 1) {
          buttons[i].hidden = false;
        }
      });
    };
  }

  function later(run, delay) {
    var timer = null;
    return function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(run, delay);
    };
  }

  // The edit form: its session's own groups and pupils are not confirmed again (the server decides the same).
  function saved(name) {
    var value = form.getAttribute("data-saved-" + name);
    return value === null ? null : value.split(",").filter(Boolean).sort().join(",");
  }

  function unchanged() {
    var groups = saved("groups");
    return groups !== null && groups === ticked("groups").sort().join(",")
      && saved("pupils") === ticked("pupils").sort().join(",");
  }

  var getCoverage = fetcher(form.getAttribute("data-coverage-url"), function (data) {
    coverage.innerHTML = data.html;
  });
  var updateCoverage = later(function () {
    var params = new URLSearchParams();
    ticked("groups").forEach(function (v) { params.append("groups", v); });
    ticked("pupils").forEach(function (v) { params.append("pupils", v); });
    params.set("purpose", purpose());
    params.set("verb", form.getAttribute("data-verb") || "Schedule");
    if (unchanged()) {
      params.set("ask", "0");
    }
    var box = document.getElementById("id_confirm_coverage");
    if (box && box.checked) {
      params.set("confirm_coverage", box.value); // still ticked if the figures have not changed
    }
    getCoverage(params);
  }, 250);

  var getPupils = fetcher(form.getAttribute("data-pupils-url"), function (data) {
    found.innerHTML = data.html;
  });
  var findPupils = later(function () {
    var params = new URLSearchParams();
    params.set("q", search.value);
    params.set("purpose", purpose());
    ticked("pupils", chosen).forEach(function (v) { params.append("chosen", v); });
    getPupils(params);
  }, 250);

  if (search && found && chosen) {
    search.addEventListener("input", findPupils);
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault(); // Enter searches; it never submits the form
        findPupils();
      }
    });
  }

  form.addEventListener("change", function (event) {
    var field = event.target;
    if (field.name === "pupils" && field.checked && found && found.contains(field)) {
      var none = form.querySelector(".picker-none");
      if (none) {
        none.remove();
      }
      chosen.appendChild(field.closest(".picker-row"));
      field.focus();
    }
    if (field.name === "groups" || field.name === "pupils" || field.name === "purpose") {
      updateCoverage();
    }
  });
})();
