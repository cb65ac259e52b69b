// The seat hold countdown: counts down to the hold's expiry, says so at a few
// milestones for screen readers, and when the hold lapses shows it and goes
// to the page that offers to start again.
//
// The server renders the seconds left (from the hold's expires_at) and the
// time as text, which is all a browser without JavaScript shows. We count
// from those seconds, not from expires_at against the device's clock, so a
// wrong clock on the buyer's phone does not shorten or stretch the hold.
(function () {
  "use strict";
  var timer = document.querySelector("[data-hold-countdown]");
  if (!timer) return;
  var announce = document.getElementById("hold-announce");
  var deadline = Date.now() + parseInt(timer.getAttribute("data-hold-countdown"), 10) * 1000;
  var expiredUrl = timer.getAttribute("data-expired-url");
  var milestones = [300, 120, 60, 30];
  var said = {};

  function words(left) {
    var minutes = Math.floor(left / 60), seconds = left % 60;
    var parts = [];
    if (minutes) parts.push(minutes + (minutes === 1 ? " minute" : " minutes"));
    if (seconds || !minutes) parts.push(seconds + (seconds === 1 ? " second" : " seconds"));
    return parts.join(" ");
  }

  function say(text) {
    if (announce) announce.textContent = text;
  }

  var handle;
  function tick() {
    var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    var minutes = Math.floor(left / 60), seconds = left % 60;
    timer.textContent = minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
    timer.setAttribute("aria-label", words(left));
    milestones.forEach(function (m) {
      if (left <= m && left > m - 5 && !said[m]) {
        said[m] = true;
        say("Your seats are held for " + words(m) + " more.");
      }
    });
    if (left === 0) {
      clearInterval(handle);
      timer.textContent = "0:00";
      var card = timer.closest("[data-hold]") || document;
      var text = document.getElementById("hold-timer");
      if (text) text.innerHTML = "<strong>Your hold expired.</strong> Taking you back to the seat map to start again.";
      // Nothing left to continue with or release.
      var actions = card.querySelector(".actions");
      if (actions) actions.style.display = "none";
      say("Your hold expired. Taking you back to the seat map to start again.");
      // The server says what happened and offers the seats again if they are free.
      setTimeout(function () { window.location.assign(expiredUrl); }, 2500);
    }
  }
  handle = setInterval(tick, 1000);
  tick();
})();
