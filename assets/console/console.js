// tenure console: enhancements only; every page works without this script.
"use strict";
(function () {
  // Times: the server writes <time datetime="...Z">UTC</time>; show the
  // viewer's local time and how far away it is ("in 2 h 10 min").
  function relative(ms) {
    var future = ms > 0;
    var minutes = Math.round(Math.abs(ms) / 60000);
    if (minutes < 1) return future ? "in under a minute" : "just now";
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60), mins = minutes % 60;
    var parts = [];
    if (days) parts.push(days + " d");
    if (hours) parts.push(hours + " h");
    if (mins && !days) parts.push(mins + " min");
    var text = parts.join(" ");
    return future ? "in " + text : text + " ago";
  }
  function localise() {
    var now = Date.now();
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) return;
      var local = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      el.textContent = local + " (" + relative(at.getTime() - now) + ")";
      el.title = at.toISOString();
    });
  }

  // Session settings: the custom-minutes input only when "Custom" is chosen;
  // the idle choice disabled while the toggle is off.
  function settings() {
    document.querySelectorAll("[data-idle-group]").forEach(function (group) {
      var prefix = group.getAttribute("data-idle-group");
      var toggle = document.getElementById(prefix + "_enabled");
      var choice = document.getElementById(prefix + "_choice");
      var custom = document.getElementById(prefix + "_custom_field");
      function update() {
        var on = !toggle || toggle.checked;
        if (choice) choice.disabled = !on;
        if (custom) custom.classList.toggle("hidden", !on || !choice || choice.value !== "custom");
      }
      if (toggle) toggle.addEventListener("change", update);
      if (choice) choice.addEventListener("change", update);
      update();
    });
  }

  // A page restored from the back/forward cache may be stale (signed out
  // since): fetch it again, so the server decides what is shown.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) window.location.reload();
  });

  document.addEventListener("DOMContentLoaded", function () {
    localise();
    settings();
    setInterval(localise, 30000);
  });
})();
