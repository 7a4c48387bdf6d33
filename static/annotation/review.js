// Reviewer flow keyboard: digits pick a value in the active score field (then move on
// to the next unanswered one), Enter submits, s skips, j/k next/previous item,
// arrow up/down change the active field. Keys typed into text fields are left alone.
(() => {
  const form = document.getElementById("review-form");
  if (!form) return;
  const sets = Array.from(form.querySelectorAll("fieldset.score"));
  let active = 0;

  const answered = (set) => !!set.querySelector("input:checked") ||
    Array.from(set.querySelectorAll("input[type=number]")).some((i) => i.value !== "");

  function activate(i) {
    if (!sets.length) return;
    active = Math.max(0, Math.min(sets.length - 1, i));
    sets.forEach((set, j) => set.classList.toggle("active", j === active));
  }

  const firstOpen = sets.findIndex((s) => !answered(s));
  activate(firstOpen < 0 ? 0 : firstOpen);
  sets.forEach((set, i) => set.addEventListener("focusin", () => activate(i)));
  sets.forEach((set, i) => set.addEventListener("click", () => activate(i)));

  function follow(id) {
    const link = document.getElementById(id);
    if (link && link.href) window.location.assign(link.href);
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target.matches("textarea, select, input[type=text], input[type=number], [contenteditable]")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const key = event.key;
    if (/^[0-9]$/.test(key)) {
      const set = sets[active];
      const input = set && set.querySelector(`input[data-key="${key}"]`);
      if (!input) return;
      event.preventDefault();
      input.checked = true;
      const next = sets.findIndex((s, j) => j > active && !answered(s));
      if (next >= 0) activate(next);
    } else if (key === "Enter" && !target.matches("button, a")) {
      event.preventDefault();
      form.requestSubmit();
    } else if (key === "s") {
      event.preventDefault();
      document.getElementById("skip-form").requestSubmit();
    } else if (key === "j") {
      event.preventDefault();
      follow("nav-next");
    } else if (key === "k") {
      event.preventDefault();
      follow("nav-prev");
    } else if (key === "ArrowDown" || key === "ArrowUp") {
      event.preventDefault();
      activate(active + (key === "ArrowDown" ? 1 : -1));
    }
  });
})();
