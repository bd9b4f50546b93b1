// Drawing on the four stacked canvases: film, masks, heatmap, marks (peak and box).
//
// Every canvas has the film's ORIGINAL size (columns x rows), scaled down only for films whose long
// side exceeds MAX_CANVAS_SIDE; `scale` maps original pixels to canvas pixels. The API's heatmaps,
// peaks, boxes and masks are all in original pixels, so they line up with the film.

export const MAX_CANVAS_SIDE = 2048;

// Viridis anchors (perceptually uniform, readable with colour-vision deficiencies).
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];

// Mask groups -> structures of /segment (patient's side) and their colour (Okabe-Ito).
export const MASK_GROUPS = {
  lungs: { structures: ["right_lung", "left_lung"], rgb: [86, 180, 233] },
  heart: { structures: ["heart"], rgb: [213, 94, 0] },
  clavicles: { structures: ["right_clavicle", "left_clavicle"], rgb: [204, 121, 167] },
};
const MASK_FILL_ALPHA = 90;

function lookupTable() {
  const table = new Uint8ClampedArray(256 * 3);
  const last = VIRIDIS.length - 1;
  for (let v = 0; v < 256; v += 1) {
    const position = (v / 255) * last;
    const low = Math.min(Math.floor(position), last - 1);
    const t = position - low;
    for (let c = 0; c < 3; c += 1) {
      table[v * 3 + c] = VIRIDIS[low][c] * (1 - t) + VIRIDIS[low + 1][c] * t;
    }
  }
  return table;
}
const LUT = lookupTable();

export async function pngImage(base64) {
  const image = new Image();
  image.src = `data:image/png;base64,${base64}`;
  await image.decode();
  return image;
}

// Size every canvas for a film of `columns` x `rows`; returns the original-to-canvas scale.
export function sizeCanvases(stage, canvases, columns, rows) {
  const scale = Math.min(1, MAX_CANVAS_SIDE / Math.max(columns, rows));
  const width = Math.max(1, Math.round(columns * scale));
  const height = Math.max(1, Math.round(rows * scale));
  for (const canvas of canvases) {
    canvas.width = width;
    canvas.height = height;
    canvas.dataset.scale = String(scale);
    canvas.getContext("2d").clearRect(0, 0, width, height);
  }
  stage.style.setProperty("--aspect", String(columns / rows));
  return scale;
}

// The decoded film (possibly decoded at a reduced resolution) stretched over the whole canvas.
export function drawFilm(canvas, image) {
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
}

function grayPixels(image, width, height, smooth) {
  const scratch = document.createElement("canvas");
  scratch.width = width;
  scratch.height = height;
  const context = scratch.getContext("2d", { willReadFrequently: true });
  context.imageSmoothingEnabled = smooth;
  context.drawImage(image, 0, 0, width, height);
  return context.getImageData(0, 0, width, height);
}

// The heatmap (a decoded `pngImage`) in viridis; alpha follows the heat, so where the API's heatmap
// is 0 nothing is drawn. The opacity slider scales the whole layer (CSS), not these pixels.
// Synchronous, so a caller that checked its selection is still current paints without a race.
export function drawHeatmap(canvas, image) {
  const pixels = grayPixels(image, canvas.width, canvas.height, true);
  const data = pixels.data; // RGBA, gray in R
  for (let i = 0; i < data.length; i += 4) {
    const v = data[i];
    data[i] = LUT[v * 3];
    data[i + 1] = LUT[v * 3 + 1];
    data[i + 2] = LUT[v * 3 + 2];
    data[i + 3] = v;
  }
  canvas.getContext("2d").putImageData(pixels, 0, 0);
}

export function clear(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

function strokeTwice(context, path, width) {
  // A dark line under a light one: visible on any part of the film and the heatmap.
  context.lineWidth = width * 2;
  context.strokeStyle = "rgba(0, 0, 0, 0.85)";
  context.stroke(path);
  context.lineWidth = width;
  context.strokeStyle = "#ffffff";
  context.stroke(path);
}

// Peak (a cross) and box (a dashed rectangle), from original pixels.
export function drawMarks(canvas, finding, scale) {
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const width = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 400));
  if (finding.box) {
    const [x0, y0, x1, y1] = finding.box.map((v) => v * scale);
    const box = new Path2D();
    box.rect(x0, y0, x1 - x0, y1 - y0);
    context.setLineDash([width * 4, width * 3]);
    strokeTwice(context, box, width);
    context.setLineDash([]);
  }
  if (finding.peak) {
    const x = (finding.peak.x + 0.5) * scale;
    const y = (finding.peak.y + 0.5) * scale;
    const arm = width * 8;
    const cross = new Path2D();
    cross.moveTo(x - arm, y);
    cross.lineTo(x + arm, y);
    cross.moveTo(x, y - arm);
    cross.lineTo(x, y + arm);
    strokeTwice(context, cross, width);
  }
}

function colourMask(pixels, rgb) {
  // Inside: light fill; boundary band (inside, with a pixel `band` away outside): opaque outline,
  // about 2 screen pixels wide whatever the film's size.
  const { data, width, height } = pixels;
  const band = Math.max(1, Math.round(Math.max(width, height) / 500));
  const inside = new Uint8Array(width * height);
  for (let p = 0; p < inside.length; p += 1) {
    inside[p] = data[p * 4] >= 128 ? 1 : 0;
  }
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const p = y * width + x;
      const i = p * 4;
      if (!inside[p]) {
        data[i + 3] = 0;
        continue;
      }
      const edge =
        x < band || y < band || x >= width - band || y >= height - band ||
        !inside[p - band] || !inside[p + band] || !inside[p - band * width] || !inside[p + band * width];
      data[i] = rgb[0];
      data[i + 1] = rgb[1];
      data[i + 2] = rgb[2];
      data[i + 3] = edge ? 255 : MASK_FILL_ALPHA;
    }
  }
  return pixels;
}

// Decoded mask layers [{image, rgb}] of the enabled groups; `masks` maps structure -> /segment entry.
export async function maskLayers(masks, enabledGroups) {
  const layers = [];
  for (const group of enabledGroups) {
    const { structures, rgb } = MASK_GROUPS[group];
    for (const name of structures) {
      const mask = masks.get(name);
      if (mask) {
        layers.push({ image: await pngImage(mask.png_base64), rgb });
      }
    }
  }
  return layers;
}

// Paint decoded mask layers (synchronous, like drawHeatmap).
export function drawMasks(canvas, layers) {
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const scratch = document.createElement("canvas");
  scratch.width = canvas.width;
  scratch.height = canvas.height;
  for (const { image, rgb } of layers) {
    const pixels = colourMask(grayPixels(image, canvas.width, canvas.height, false), rgb);
    scratch.getContext("2d").putImageData(pixels, 0, 0);
    context.drawImage(scratch, 0, 0);
  }
}
