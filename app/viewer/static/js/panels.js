// Text panels of the page: the request log, the input summary, the selected finding, the mask
// legend. Pure rendering from API answers (no requests, no state).

import { formatScore } from "./findings.js";
import { MASK_GROUPS } from "./overlay.js";

export const label = (name) => name.replaceAll("_", " ");
const percent = (value) => `${(value * 100).toFixed(1)} %`;

// One line per answer: the model, round-trip and service timings, the batch and the request id.
export function logRequest(list, what, result, elapsedMs) {
  const t = result.timing_ms;
  const item = document.createElement("li");
  item.textContent =
    `${what}: ${result.model.name} ${result.model.version} (${result.model.provider}); ` +
    `${Math.round(elapsedMs)} ms round trip, service: queue ${t.queue} ms, decode ${t.decode} ms, ` +
    `model ${t.infer} ms, post ${t.post} ms, batch of ${result.batch_size}; request id `;
  const id = document.createElement("code");
  id.textContent = result.request_id || "none";
  item.append(id);
  list.prepend(item);
}

export function describeInput(input) {
  const parts = [input.format.toUpperCase(), `${input.columns} × ${input.rows} pixels`, input.photometric];
  if (input.view_position) {
    parts.push(`view ${input.view_position}`);
  }
  return parts.join(", ");
}

export function renderInputInfo(list, input) {
  const rows = [
    ["Format", input.format.toUpperCase()],
    ["Original size", `${input.columns} × ${input.rows} pixels`],
    ["Photometric", input.photometric],
    ["View", input.view_position || "not stated"],
    ["Transfer syntax", input.transfer_syntax_name || input.transfer_syntax || "—"],
    ["Steps applied", input.steps.join(" → ")],
    ["Warnings", input.warnings.length ? input.warnings.join("; ") : "none"],
  ];
  list.replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

// The selected finding in words (a text alternative to the overlay) and its anatomical regions.
export function renderDetail(summary, heading, list, finding) {
  const calibration = finding.calibrated ? "calibrated threshold" : "uncalibrated default threshold";
  const verdict = finding.positive ? "above" : "below";
  let where = `Heatmap peak at x ${finding.peak.x}, y ${finding.peak.y}`;
  if (finding.box) {
    const [x0, y0, x1, y1] = finding.box;
    where += `; box x ${x0}–${x1}, y ${y0}–${y1}`;
  }
  summary.textContent =
    `${label(finding.name)}: score ${formatScore(finding.score)}, ${verdict} its threshold ` +
    `${formatScore(finding.threshold)} (${calibration}). ${where} (original pixels).`;
  heading.hidden = finding.anatomy.length === 0;
  list.replaceChildren(
    ...finding.anatomy.map((region) => {
      const item = document.createElement("li");
      item.textContent = `${label(region.name)} (${formatScore(region.score)})`;
      return item;
    }),
  );
}

// "Lungs: right lung 16.8 %, left lung 15.9 %; Heart: ..." for the enabled groups.
export function maskLegend(masks, groups) {
  return groups
    .map((group) => {
      const areas = MASK_GROUPS[group].structures
        .filter((name) => masks.has(name))
        .map((name) => `${label(name)} ${percent(masks.get(name).area_fraction)}`);
      return `${group[0].toUpperCase()}${group.slice(1)}: ${areas.join(", ") || "none found"}`;
    })
    .join("; ");
}
