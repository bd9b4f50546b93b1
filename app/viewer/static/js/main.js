// The viewer page: a film goes to /classify (with the rendered film), a selected finding to /ground,
// mask toggles to /segment, a typed finding to /ground. Nothing is stored: the film lives in this
// page's memory until another one is loaded or the page is closed.

import { ApiError, getJson, postImage, readiness } from "./api.js";
import { explain } from "./explain.js";
import { appendFinding, enableKeyboard, markSelected, renderFindings } from "./findings.js";
import {
  MASK_GROUPS, clear, drawFilm, drawHeatmap, drawMarks, drawMasks, maskLayers, pngImage, sizeCanvases,
} from "./overlay.js";
import {
  describeInput, label, logRequest as logRequestTo, maskLegend, renderDetail, renderInputInfo,
} from "./panels.js";

const byId = (id) => document.getElementById(id);
const ui = {
  status: byId("service-status"),
  dropZone: byId("drop-zone"),
  fileInput: byId("file-input"),
  stage: byId("stage"),
  film: byId("film-canvas"),
  masks: byId("mask-canvas"),
  heatmap: byId("heatmap-canvas"),
  marks: byId("marks-canvas"),
  caption: byId("film-caption"),
  opacity: byId("opacity"),
  opacityValue: byId("opacity-value"),
  maskControls: byId("mask-controls"),
  maskLegend: byId("mask-legend"),
  apiKey: byId("api-key"),
  settings: document.querySelector("form.settings"),
  error: byId("error"),
  errorTitle: byId("error-title"),
  errorDetail: byId("error-detail"),
  errorExplain: byId("error-explain"),
  errorMeta: byId("error-meta"),
  findingsHint: byId("findings-hint"),
  findingsTable: byId("findings-table"),
  findingsBody: byId("findings-body"),
  calibrationNote: byId("calibration-note"),
  freeTextForm: byId("free-text-form"),
  freeText: byId("free-text"),
  freeTextSubmit: byId("free-text-submit"),
  detailSummary: byId("detail-summary"),
  regions: byId("regions"),
  regionsHeading: byId("regions-heading"),
  inputInfo: byId("input-info"),
  modelInfo: byId("model-info"),
  log: byId("request-log"),
};
const canvases = [ui.film, ui.masks, ui.heatmap, ui.marks];
const MASK_LEGEND_DEFAULT = ui.maskLegend.textContent;

const state = {
  generation: 0, // bumped per loaded film: answers for an older film are dropped
  file: null, // the film in memory (kept after a refusal, for a retry with an API key)
  loaded: false, // the film was scored: masks and free text may be asked for
  scale: 1,
  grounded: new Map(), // finding name -> /ground entry
  selected: null,
  masks: null, // structure -> /segment entry
  masksPending: null,
  maskDraw: 0,
  model: null, // /v2/models/{name} answer
};

const apiKey = () => ui.apiKey.value.trim();
const logRequest = (what, result, elapsedMs) => logRequestTo(ui.log, what, result, elapsedMs);

// --- messages -------------------------------------------------------------------------------------
function showError(error, doing) {
  const problem =
    error instanceof ApiError
      ? error.problem
      : { title: "The page failed", detail: String(error?.message || error), code: "page_error" };
  ui.errorTitle.textContent = problem.title;
  ui.errorDetail.textContent = problem.detail;
  ui.errorExplain.textContent = explain(problem);
  const meta = [doing];
  if (error instanceof ApiError && error.status) {
    meta.push(`HTTP ${error.status}`);
  }
  meta.push(`code ${problem.code}`);
  if (problem.request_id) {
    meta.push(`request id ${problem.request_id}`);
  }
  ui.errorMeta.textContent = meta.join(" · ");
  ui.error.dataset.code = problem.code;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.dataset.code = "";
}

// --- the film --------------------------------------------------------------------------------------
function resetFilm() {
  state.loaded = false;
  state.grounded = new Map();
  state.selected = null;
  state.masks = null;
  state.masksPending = null;
  ui.stage.hidden = true;
  for (const canvas of canvases) {
    clear(canvas);
    delete canvas.dataset.finding;
    delete canvas.dataset.groups;
  }
  ui.film.setAttribute("aria-label", "No film loaded");
  ui.caption.textContent = "";
  ui.findingsTable.hidden = true;
  ui.findingsBody.replaceChildren();
  ui.calibrationNote.hidden = true;
  ui.detailSummary.textContent = "None selected.";
  ui.regions.replaceChildren();
  ui.regionsHeading.hidden = true;
  ui.inputInfo.replaceChildren();
  ui.maskLegend.textContent = MASK_LEGEND_DEFAULT;
  setFreeText(false);
}

async function showFilm(input) {
  ui.stage.hidden = false;
  state.scale = sizeCanvases(ui.stage, canvases, input.columns, input.rows);
  const described = describeInput(input);
  if (input.image) {
    drawFilm(ui.film, await pngImage(input.image.png_base64));
    const reduced =
      input.image.width !== input.columns ? ` (decoded at ${input.image.width} × ${input.image.height})` : "";
    ui.caption.textContent =
      `The film as the model saw it after decoding${reduced}: ${described}. ` +
      "The patient's left is on the image's right.";
  } else {
    ui.caption.textContent = `${described}. This service did not return the rendered film.`;
  }
  ui.film.setAttribute("aria-label", `Chest film as the model saw it: ${described}`);
  renderInputInfo(ui.inputInfo, input);
}

async function analyse(file) {
  const generation = ++state.generation;
  resetFilm();
  clearError();
  state.file = file;
  ui.status.textContent = "Scoring the film…";
  try {
    const { result, elapsedMs } = await postImage("classify", [["input_image", "true"]], file, apiKey());
    if (generation !== state.generation) {
      return;
    }
    logRequest("/classify", result, elapsedMs);
    await showFilm(result.input);
    if (generation !== state.generation) {
      return;
    }
    renderFindings(ui.findingsBody, result.findings, select);
    ui.findingsTable.hidden = false;
    ui.calibrationNote.hidden = result.findings.every((finding) => finding.calibrated);
    const positives = result.findings.filter((finding) => finding.positive).length;
    state.loaded = true;
    ui.status.textContent = `Scored ${result.findings.length} findings (${positives} above threshold).`;
    setFreeText(true);
    await loadModel(result.model.name);
    await refreshMasks();
  } catch (error) {
    if (generation === state.generation) {
      ui.status.textContent = "The film was not analysed.";
      showError(error, "Scoring the film");
    }
  }
}

async function loadModel(name) {
  if (state.model?.name !== name) {
    try {
      state.model = await getJson(`v2/models/${encodeURIComponent(name)}`);
    } catch {
      state.model = null; // metadata is a nicety: the results stand without it
      return;
    }
  }
  const { versions, parameters } = state.model;
  ui.modelInfo.textContent =
    `Model ${state.model.name} ${versions.join(", ")} on ${parameters.provider}; ` +
    `intended use: ${parameters.intended_use}.`;
  if (!parameters.free_text_findings) {
    setFreeText(false, "This model cannot score free-text findings.");
  }
}

// --- findings and heatmaps ---------------------------------------------------------------------------
async function grounded(name, generation) {
  const cached = state.grounded.get(name);
  if (cached) {
    return cached;
  }
  const { result, elapsedMs } = await postImage("ground", [["findings", name]], state.file, apiKey());
  if (generation !== state.generation) {
    return null;
  }
  logRequest(`/ground ${label(name)}`, result, elapsedMs);
  const finding = result.findings[0];
  state.grounded.set(name, finding);
  return finding;
}

async function select(name) {
  const generation = state.generation;
  state.selected = name;
  markSelected(ui.findingsBody, name);
  ui.detailSummary.textContent = `Locating ${label(name)}…`;
  try {
    const finding = await grounded(name, generation);
    if (!finding || state.selected !== name) {
      return;
    }
    const image = await pngImage(finding.heatmap.png_base64);
    if (generation !== state.generation || state.selected !== name) {
      return;
    }
    drawHeatmap(ui.heatmap, image);
    drawMarks(ui.marks, finding, state.scale);
    ui.heatmap.dataset.finding = name;
    renderDetail(ui.detailSummary, ui.regionsHeading, ui.regions, finding);
  } catch (error) {
    if (generation === state.generation) {
      ui.detailSummary.textContent = `${label(name)} could not be located.`;
      showError(error, `Locating ${label(name)}`);
    }
  }
}

function setFreeText(enabled, why) {
  ui.freeText.disabled = !enabled;
  ui.freeTextSubmit.disabled = !enabled;
  ui.freeText.title = why || "";
}

async function submitFreeText(event) {
  event.preventDefault();
  const text = ui.freeText.value.trim();
  if (!text || !state.loaded) {
    return;
  }
  const generation = state.generation;
  clearError();
  ui.freeTextSubmit.disabled = true;
  try {
    const { result, elapsedMs } = await postImage("ground", [["findings", text]], state.file, apiKey());
    if (generation !== state.generation) {
      return;
    }
    logRequest(`/ground "${text}"`, result, elapsedMs);
    const finding = result.findings[0];
    state.grounded.set(finding.name, finding);
    appendFinding(ui.findingsBody, finding, select);
    await select(finding.name);
  } catch (error) {
    if (generation === state.generation) {
      showError(error, "Scoring the free-text finding");
    }
  } finally {
    ui.freeTextSubmit.disabled = ui.freeText.disabled;
  }
}

// --- masks -----------------------------------------------------------------------------------------
function enabledGroups() {
  return [...ui.maskControls.querySelectorAll("input[name=mask]:checked")].map((box) => box.value);
}

function structuresToAsk() {
  const known = state.model?.parameters?.structures;
  const all = Object.values(MASK_GROUPS).flatMap((group) => group.structures);
  return known ? all.filter((name) => known.includes(name)) : all;
}

function ensureMasks(generation) {
  if (state.masks) {
    return Promise.resolve(state.masks);
  }
  if (!state.masksPending) {
    const params = structuresToAsk().map((name) => ["anatomy", name]);
    state.masksPending = postImage("segment", params, state.file, apiKey())
      .then(({ result, elapsedMs }) => {
        const masks = new Map(result.masks.map((mask) => [mask.name, mask]));
        if (generation === state.generation) {
          logRequest("/segment", result, elapsedMs);
          state.masks = masks;
        }
        return masks;
      })
      .finally(() => {
        if (generation === state.generation) {
          state.masksPending = null;
        }
      });
  }
  return state.masksPending;
}

async function refreshMasks() {
  const generation = state.generation;
  const draw = ++state.maskDraw;
  if (!state.loaded || enabledGroups().length === 0) {
    clear(ui.masks);
    ui.masks.dataset.groups = "";
    ui.maskLegend.textContent = MASK_LEGEND_DEFAULT;
    return;
  }
  try {
    const masks = await ensureMasks(generation);
    const groups = enabledGroups();
    const layers = await maskLayers(masks, groups);
    if (generation !== state.generation || draw !== state.maskDraw) {
      return; // a newer film or toggle took over
    }
    drawMasks(ui.masks, layers);
    ui.masks.dataset.groups = groups.join(",");
    ui.maskLegend.textContent = `Share of the film: ${maskLegend(masks, groups)}.`;
  } catch (error) {
    if (generation === state.generation) {
      showError(error, "Segmenting the anatomy");
    }
  }
}

// --- wiring ------------------------------------------------------------------------------------------
function wire() {
  ui.fileInput.addEventListener("change", () => {
    const [file] = ui.fileInput.files;
    ui.fileInput.value = ""; // the same file may be chosen again
    if (file) {
      analyse(file);
    }
  });
  // A film dropped anywhere is analysed, never opened by the browser in place of the page.
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    ui.dropZone.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => ui.dropZone.classList.remove("dragging"));
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    ui.dropZone.classList.remove("dragging");
    const file = event.dataTransfer?.files?.[0];
    if (file) {
      analyse(file);
    }
  });
  ui.opacity.addEventListener("input", () => {
    ui.heatmap.style.opacity = String(ui.opacity.value / 100);
    ui.opacityValue.textContent = `${ui.opacity.value} %`;
  });
  ui.maskControls.addEventListener("change", refreshMasks);
  ui.freeTextForm.addEventListener("submit", submitFreeText);
  ui.settings.addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.file && !state.loaded) {
      analyse(state.file); // e.g. the key the service asked for has just been typed
    }
  });
  enableKeyboard(ui.findingsBody);
}

async function watchService() {
  for (let attempt = 0; attempt < 60; attempt += 1) {
    const { ready, detail } = await readiness();
    ui.status.textContent = ready ? "Service ready." : `Service not ready yet: ${detail}`;
    if (ready) {
      document.body.dataset.ready = "true";
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

wire();
watchService();
