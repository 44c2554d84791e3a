// "Run again with changes": the form starts with an earlier run's parameters; as they are
// edited, each changed field is marked and the changes are listed (before → after).
(function () {
  "use strict";
  const baseEl = document.getElementById("based-on-values");
  const form = document.getElementById("experiment-form");
  const list = document.getElementById("param-diff-list");
  const summary = document.getElementById("param-diff-summary");
  if (!baseEl || !form || !list || !summary) return;
  const base = JSON.parse(baseEl.textContent);

  const same = (a, b) => a === b || (a !== "" && b !== "" && Number(a) === Number(b));
  const show = (values) => (values.length ? values.join(", ") : "—");
  function labelOf(name) {
    const label = form.querySelector(`label[for="id_${name}"]`);
    return label ? label.textContent.replace(/:\s*$/, "") : name;
  }

  function update() {
    const data = new FormData(form);
    list.replaceChildren();
    let changed = 0;
    for (const [name, before] of Object.entries(base)) {
      const now = data.getAll(name).map(String).sort();
      const was = before.slice().sort();
      const differs = now.length !== was.length || now.some((v, i) => !same(v, was[i]));
      const field = form.querySelector(`[name="${name}"]`)?.closest(".field");
      if (field) field.classList.toggle("changed", differs);
      if (!differs) continue;
      changed += 1;
      const item = document.createElement("li");
      item.textContent = `${labelOf(name)}: ${show(before)} → ${show(data.getAll(name))}`;
      list.appendChild(item);
    }
    summary.textContent = changed
      ? `${changed} parameter${changed > 1 ? "s" : ""} changed from the earlier run:`
      : "No parameter changed yet.";
  }
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
})();
