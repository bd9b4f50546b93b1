// The findings table: one row per finding, a button per row (keyboard and screen-reader friendly),
// arrow keys move between findings, Enter or Space selects one.

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  row.append(td);
  return td;
}

function badge(text, className, title) {
  const span = document.createElement("span");
  span.className = `badge ${className}`;
  span.textContent = text;
  span.title = title;
  return span;
}

export function formatScore(value) {
  return Number(value).toFixed(3);
}

function row(finding, onSelect) {
  const tr = document.createElement("tr");
  tr.dataset.name = finding.name;
  tr.classList.toggle("positive", finding.positive);
  tr.classList.toggle("uncalibrated", !finding.calibrated);
  const th = document.createElement("th");
  th.scope = "row";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "finding";
  button.dataset.name = finding.name;
  button.setAttribute("aria-pressed", "false");
  button.textContent = finding.name.replaceAll("_", " ");
  button.addEventListener("click", () => onSelect(finding.name));
  th.append(button);
  if (finding.custom) {
    th.append(badge("free text", "badge-custom", "Scored through the text encoder"));
  }
  tr.append(th);
  cell(tr, formatScore(finding.score), "score");
  cell(tr, formatScore(finding.threshold), "threshold");
  const calibrated = cell(tr, finding.calibrated ? "yes" : "no", "calibrated");
  if (!finding.calibrated) {
    calibrated.append(
      badge("uncalibrated", "badge-uncalibrated", "Default threshold, not validated on held-out data"),
    );
  }
  cell(tr, finding.positive ? "yes" : "no", "positive");
  return tr;
}

function moveFocus(body, from, step) {
  const buttons = [...body.querySelectorAll("button.finding")];
  const index = buttons.indexOf(from);
  if (index < 0 || buttons.length === 0) {
    return;
  }
  let next = index + step;
  if (step === -Infinity) {
    next = 0;
  } else if (step === Infinity) {
    next = buttons.length - 1;
  }
  buttons[Math.max(0, Math.min(buttons.length - 1, next))].focus();
}

const KEY_STEPS = { ArrowDown: 1, ArrowUp: -1, Home: -Infinity, End: Infinity };

// Wire keyboard navigation once on the table body.
export function enableKeyboard(body) {
  body.addEventListener("keydown", (event) => {
    const step = KEY_STEPS[event.key];
    if (step === undefined || !event.target.matches("button.finding")) {
      return;
    }
    event.preventDefault();
    moveFocus(body, event.target, step);
  });
}

export function renderFindings(body, findings, onSelect) {
  body.replaceChildren(...findings.map((finding) => row(finding, onSelect)));
}

export function appendFinding(body, finding, onSelect) {
  const existing = body.querySelector(`tr[data-name="${CSS.escape(finding.name)}"]`);
  const fresh = row(finding, onSelect);
  if (existing) {
    existing.replaceWith(fresh);
  } else {
    body.append(fresh);
  }
}

export function markSelected(body, name) {
  for (const tr of body.querySelectorAll("tr")) {
    const selected = tr.dataset.name === name;
    tr.classList.toggle("selected", selected);
    tr.querySelector("button.finding").setAttribute("aria-pressed", String(selected));
  }
}
