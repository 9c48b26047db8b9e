// LeadPilot site script: survey branching on the page (the server walks the same branches when it scores).
(function () {
  "use strict";
  function chosen(fieldset) {
    var picked = fieldset.querySelectorAll("input:checked");
    if (picked.length) return Array.prototype.map.call(picked, function (i) { return i.value; });
    var text = fieldset.querySelector("input:not([type=radio]):not([type=checkbox])");
    return text && text.value ? [text.value] : [];
  }
  function branch(form) {
    var questions = Array.prototype.slice.call(form.querySelectorAll(".lp-question"));
    var index = 0, shown = {};
    while (index !== null && index < questions.length) {
      var q = questions[index];
      shown[index] = true;
      var answers = chosen(q);
      if (!answers.length) break;
      var next = JSON.parse(q.getAttribute("data-next") || "{}"), target = null;
      for (var a = 0; a < answers.length && !target; a++) target = next[answers[a]] || null;
      target = target || q.getAttribute("data-default-next") || null;
      if (target === "end") index = null;
      else if (target) index = questions.findIndex(function (el) { return el.getAttribute("data-key") === target; });
      else index = index + 1;
    }
    questions.forEach(function (q, i) { q.hidden = !shown[i]; });
  }
  document.querySelectorAll("form[data-survey]").forEach(function (form) {
    form.addEventListener("change", function () { branch(form); });
    form.addEventListener("input", function () { branch(form); });
    branch(form);
  });
})();
