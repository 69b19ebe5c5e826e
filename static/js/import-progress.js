// The progress bar of an import running in the background. The page works without this script (a
// Refresh link and the status text); with it, the bar and the sentence follow the import, and the page
// reloads to show the result when the import ends. No inline script: the CSP forbids them.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-progress-url");
  var bar = document.getElementById("import-progress-bar");
  var text = document.getElementById("import-progress-text");
  var badge = document.getElementById("run-status");
  var delay = 1500;
  var failures = 0;

  function show(data) {
    if (data.total > 0) {
      bar.max = 100;
      bar.value = data.percent;
      bar.textContent = data.percent + "%";
    } else {
      bar.removeAttribute("value"); // indeterminate while the file is read and planned again
    }
    if (text.textContent !== data.message) {
      text.textContent = data.message;
    }
    if (badge && badge.textContent !== data.label) {
      badge.textContent = data.label;
      badge.className = "badge " + data.badge_css + " align-middle fs-6";
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        show(data);
        if (data.finished) {
          window.location.assign(data.url);
          return;
        }
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        // A network hiccup: try again more slowly; after a few failures leave it to the Refresh link.
        failures += 1;
        if (failures < 5) {
          window.setTimeout(poll, delay * (failures + 1));
        }
      });
  }

  window.setTimeout(poll, delay);
})();
