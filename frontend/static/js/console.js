// Agency console behaviour: the onboarding wizard's steps, slug suggestion, review, and copy buttons.
// Without JavaScript the wizard is one long form that still works.
(() => {
  "use strict";

  // Cyrillic → Latin, so a Russian client name suggests a readable slug.
  const TRANSLIT = {
    а: "a", б: "b", в: "v", г: "g", д: "d", е: "e", ё: "e", ж: "zh", з: "z", и: "i", й: "y", к: "k", л: "l",
    м: "m", н: "n", о: "o", п: "p", р: "r", с: "s", т: "t", у: "u", ф: "f", х: "h", ц: "ts", ч: "ch", ш: "sh",
    щ: "sch", ъ: "", ы: "y", ь: "", э: "e", ю: "yu", я: "ya",
  };

  function slugify(text) {
    const latin = [...text.toLowerCase()].map((ch) => TRANSLIT[ch] ?? ch).join("");
    return latin
      .normalize("NFKD")
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^[^a-z]+/, "")
      .slice(0, 40)
      .replace(/-+$/, "");
  }

  function setUpWizard(form) {
    const steps = [...form.querySelectorAll("fieldset.step")];
    const markers = [...document.querySelectorAll(".steps [data-step]")];
    const review = form.querySelector("#onboard-review");
    let current = Math.max(0, steps.findIndex((step) => step.dataset.step === form.dataset.currentStep));

    function show(index) {
      current = index;
      steps.forEach((step, i) => step.classList.toggle("current", i === index));
      markers.forEach((marker, i) => marker.classList.toggle("current", i === index));
      if (steps[index].dataset.step === "review") fillReview();
      const first =
        steps[index].querySelector(".has-error input, .has-error select") ??
        steps[index].querySelector("input:not([type=hidden]), select");
      if (first) first.focus();
    }

    function stepIsValid(step) {
      return [...step.querySelectorAll("input, select")].every((input) => input.reportValidity());
    }

    function fieldValue(field) {
      const inputs = [...field.querySelectorAll("input, select")];
      const input = inputs[0];
      if (input.type === "radio") {
        const checked = inputs.find((radio) => radio.checked);
        return checked ? checked.closest("label").textContent.trim() : "";
      }
      if (input.type === "file") return input.files.length ? input.files[0].name : "—";
      if (input.tagName === "SELECT") return input.selectedOptions[0]?.textContent.trim() ?? "";
      return input.value;
    }

    function fillReview() {
      review.replaceChildren();
      form.querySelectorAll(".field[data-field]").forEach((field) => {
        const term = document.createElement("dt");
        term.textContent = field.querySelector(":scope > label").textContent;
        const value = document.createElement("dd");
        value.textContent = fieldValue(field) || "—";
        if (field.dataset.field === "primary_color") {
          const swatch = document.createElement("span");
          swatch.className = "swatch";
          swatch.style.background = value.textContent;
          value.prepend(swatch);
        }
        review.append(term, value);
      });
    }

    form.addEventListener("click", (event) => {
      if (event.target.closest("[data-next]") && stepIsValid(steps[current])) show(current + 1);
      if (event.target.closest("[data-back]")) show(current - 1);
    });

    // Suggest a slug from the name until the user types one of their own.
    const name = form.querySelector("[name=name]");
    const slug = form.querySelector("[name=slug]");
    let slugEdited = slug.value !== "";
    slug.addEventListener("input", (event) => {
      if (event.isTrusted) slugEdited = slug.value !== "";
    });
    name.addEventListener("input", () => {
      if (slugEdited) return;
      slug.value = slugify(name.value);
      slug.dispatchEvent(new Event("input", { bubbles: true })); // runs the htmx availability check
    });

    form.classList.add("wizard");
    show(current);
  }

  function setUpCopyButtons() {
    document.querySelectorAll("[data-copy]").forEach((button) => {
      button.addEventListener("click", async () => {
        const text = document.querySelector(button.dataset.copy).textContent.trim();
        const label = button.textContent;
        try {
          await navigator.clipboard.writeText(text);
          button.textContent = "✓";
        } catch {
          button.textContent = "✗";
        }
        setTimeout(() => (button.textContent = label), 1500);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("onboard-form");
    if (form) setUpWizard(form);
    setUpCopyButtons();
  });
})();
