// The latent-space explorer: plain JavaScript over the server's JSON API, no libraries, no build.
// Every picture is drawn from the float32 images the API returns, rounded exactly as the library's
// to_uint8 does (in float32), so the page shows the library's pixels.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  model: null,      // the /v1/models/{name} summary
  samples: [],      // [{z, canvas}] of the drawn grid
  picked: [],       // indices into samples, at most two
  base: null,       // the code the sliders start from (D numbers)
  mapCodes: [],     // codes drawn on the latent map
  map: null,        // latent-map JSON (window, density)
  last: null,       // {z, images} of the last decode, for tests and curious users
  requests: 0,      // API calls made
  pending: 0,       // API calls not yet answered
};
window.explorer = state;

function status(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

async function api(path, body) {
  const headers = { Accept: "application/json" };
  const key = $("key").value;
  if (key) headers.Authorization = "Bearer " + key;
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    if (body instanceof FormData) init.body = body;
    else { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  }
  state.requests += 1;
  state.pending += 1;
  try {
    const r = await fetch(path, init);
    if (r.status === 401) $("key-box").hidden = false;
    const doc = await r.json();
    if (!r.ok) throw new Error(doc.detail || r.statusText);
    return doc;
  } finally {
    state.pending -= 1;
  }
}

// float32 in [0, 1] -> uint8, as numpy's (clip(x, 0, 1) * 255 + 0.5).astype(uint8) in float32
function toByte(v) {
  const c = Math.fround(Math.min(1, Math.max(0, v)));
  return Math.floor(Math.fround(Math.fround(c * 255) + 0.5));
}

// image (C, H, W) as nested lists -> pixels on a canvas of H x W
function draw(canvas, image) {
  const c = image.length, h = image[0].length, w = image[0][0].length;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = 4 * (y * w + x);
      for (let k = 0; k < 3; k++) out.data[i + k] = toByte(image[c === 1 ? 0 : k][y][x]);
      out.data[i + 3] = 255;
    }
  }
  ctx.putImageData(out, 0, 0);
}

function tile(image, cls = "tile") {
  const cv = document.createElement("canvas");
  cv.className = cls;
  draw(cv, image);
  return cv;
}

// -- models ----------------------------------------------------------------------------------------

async function loadModels() {
  const doc = await api("/v1/models");
  const sel = $("model");
  sel.innerHTML = "";
  for (const m of doc.models) {
    const o = document.createElement("option");
    o.value = m.name; o.textContent = m.name;
    sel.appendChild(o);
  }
  if (!doc.models.length) { status("this server holds no models", true); return; }
  await selectModel(sel.value);
}

async function selectModel(name) {
  status(`loading ${name}...`);
  const m = await api(`/v1/models/${encodeURIComponent(name)}`);
  state.model = m;
  $("about").textContent = `${m.kind}, ${m.latent_dim}-D latent, ${m.prior.name} prior` +
    `${m.sampler ? " and a fitted sampler" : ""}, ${m.image.channels}x${m.image.height}x${m.image.width}`;
  const labelSel = $("label");
  labelSel.length = 2;
  $("label-box").hidden = !m.conditional;
  // A bundle with a fitted sampler draws from it; the box lets a person compare with the prior.
  $("prior-box").hidden = !m.sampler;
  $("from-prior").checked = false;
  $("label-note").textContent = m.conditional ? "" : m.sampler ?
    "Samples come from a mixture fitted to the training images' codes; tick 'from the prior' to compare." :
    "This model is not label-conditioned: samples come from the whole prior.";
  if (m.conditional) {
    for (const l of m.labels) {
      const o = document.createElement("option");
      o.value = l; o.textContent = l;
      labelSel.appendChild(o);
    }
  }
  state.base = m.prior_mean.slice();
  state.picked = [];
  state.mapCodes = [];
  $("path").innerHTML = "";
  $("path-note").textContent = "Pick two samples.";
  buildSliders();
  await setupMap();
  await drawSamples();
  // With a fitted sampler the prior's mean can lie where the decoder has never been (an empty
  // image on color-dsprites): start the edit from the first sample instead.
  if (m.sampler && state.samples.length) {
    state.base = state.samples[0].z.slice();
    syncDims();  // the sliders show where the sample sits, as when a sample is picked
  }
  await decodeCurrent();
}

// -- samples and paths -----------------------------------------------------------------------------

async function drawSamples() {
  const m = state.model;
  const seed = parseInt($("seed").value || "0", 10);
  const n = Math.max(1, Math.min(64, parseInt($("n").value || "16", 10)));
  const label = $("label").value;
  const box = $("samples");
  status("sampling...");
  const rows = [];  // [{name, images, z}]
  if (m.conditional && label === "*") {
    const per = Math.max(1, Math.floor(n / m.labels.length)) || 1;
    // Row i is label i drawn from seed + i, the library's per-label grid.
    const docs = await Promise.all(m.labels.map((l, i) =>
      api(`/v1/models/${m.name}/sample`, { n: per, seed: seed + i, label: l, format: "json" })));
    docs.forEach((d, i) => rows.push({ name: m.labels[i], images: d.images, z: d.z }));
  } else {
    const body = { n, seed, format: "json" };
    if (m.conditional && label) body.label = label;
    if (m.sampler && $("from-prior").checked) body.from_prior = true;
    const d = await api(`/v1/models/${m.name}/sample`, body);
    rows.push({ name: null, images: d.images, z: d.z });
  }
  box.innerHTML = "";
  state.samples = [];
  state.picked = [];
  for (const row of rows) {
    const holder = row.name === null ? box : document.createElement("div");
    if (row.name !== null) {
      holder.className = "row";
      const s = document.createElement("span");
      s.textContent = row.name;
      holder.appendChild(s);
      box.appendChild(holder);
    }
    row.images.forEach((img, j) => {
      const index = state.samples.length;
      const cv = tile(img);
      cv.dataset.index = String(index);
      cv.title = `sample ${index}`;
      cv.addEventListener("click", () => pick(index));
      holder.appendChild(cv);
      state.samples.push({ z: row.z[j], canvas: cv });
    });
  }
  drawMap();
  status(`${state.samples.length} samples from ${m.name}, seed ${seed}`);
}

async function pick(index) {
  const i = state.picked.indexOf(index);
  if (i >= 0) state.picked.splice(i, 1);
  else {
    state.picked.push(index);
    if (state.picked.length > 2) state.picked.shift();
  }
  state.samples.forEach((s, k) => s.canvas.classList.toggle("picked", state.picked.includes(k)));
  setBase(state.samples[index].z);
  if (state.picked.length === 2) await drawPath();
}

async function drawPath() {
  const m = state.model;
  const [a, b] = state.picked.map((k) => state.samples[k].z);
  const steps = 10;
  const d = await api(`/v1/models/${m.name}/interpolate`,
    { anchors: [a, b], steps, method: "slerp", format: "json" });
  const box = $("path");
  box.innerHTML = "";
  for (const img of d.images) box.appendChild(tile(img, "step"));
  $("path-note").textContent = `slerp from sample ${state.picked[0]} to sample ${state.picked[1]}, ${steps} steps`;
}

// -- sliders: one per top latent dimension and one per attribute -------------------------------------

function slider(parent, name, dataset, value) {
  const label = document.createElement("label");
  label.textContent = name;
  const input = document.createElement("input");
  input.type = "range"; input.min = "-3"; input.max = "3"; input.step = "0.05";
  input.value = String(value);
  Object.assign(input.dataset, dataset);
  const out = document.createElement("output");
  out.textContent = Number(input.value).toFixed(2);
  input.addEventListener("input", () => {
    input.dataset.moved = "1";  // only moved sliders change the code (a slider rounds to its step)
    out.textContent = Number(input.value).toFixed(2);
    decodeCurrent();
  });
  label.htmlFor = input.id = `s-${Object.values(dataset).join("-")}`;
  parent.append(label, input, out);
  return input;
}

function buildSliders() {
  const m = state.model;
  const dims = $("dims"), attrs = $("attrs");
  dims.innerHTML = ""; attrs.innerHTML = "";
  for (const d of m.dims_by_importance.slice(0, 8)) {
    const factor = m.factor_per_dim && m.factor_per_dim[d] && m.factor_per_dim[d] !== "-" ? ` (${m.factor_per_dim[d]})` : "";
    slider(dims, `z${d}${factor}`, { dim: String(d) }, 0);
  }
  for (const [name, a] of Object.entries(m.attributes)) {
    const s = slider(attrs, name, { attr: name }, 0);
    s.title = a.amount ? `amount 1 = ${a.amount}` : a.description;
  }
  syncDims();
}

// Dimension sliders show the base code: value = (z_d - mean_d) / std_d, as a traversal counts.
function syncDims() {
  const m = state.model;
  for (const input of document.querySelectorAll("#dims input")) {
    const d = Number(input.dataset.dim);
    const v = (state.base[d] - m.prior_mean[d]) / m.prior_std[d];
    input.value = String(Math.max(-3, Math.min(3, v)));
    input.nextSibling.textContent = Number(input.value).toFixed(2);
    delete input.dataset.moved;
  }
  for (const input of document.querySelectorAll("#attrs input")) {
    input.value = "0";
    delete input.dataset.moved;
    input.nextSibling.textContent = "0.00";
  }
}

function setBase(z) {
  state.base = z.slice();
  syncDims();
  decodeCurrent();
}

// The code the sliders describe: each moved dimension set to mean + value * std (the library's
// traverse), then amount * vector added per attribute (the library's shift).
function currentCode() {
  const m = state.model;
  const z = state.base.slice();
  for (const input of document.querySelectorAll("#dims input")) {
    if (!input.dataset.moved) continue;
    const d = Number(input.dataset.dim);
    z[d] = m.prior_mean[d] + Number(input.value) * m.prior_std[d];
  }
  for (const input of document.querySelectorAll("#attrs input")) {
    const amount = Number(input.value);
    if (amount === 0) continue;
    const vec = m.attributes[input.dataset.attr].vector;
    for (let k = 0; k < z.length; k++) z[k] += amount * vec[k];
  }
  return z;
}

// One small request per slider move; moves made while one is in flight collapse into the next.
let inFlight = false, again = false;
async function decodeCurrent() {
  if (inFlight) { again = true; return; }
  inFlight = true;
  try {
    do {
      again = false;
      const z = currentCode();
      const d = await api(`/v1/models/${state.model.name}/decode`, { z: [z], format: "json" });
      draw($("current"), d.images[0]);
      state.last = { z, image: d.images[0] };
      $("current").dataset.version = String(state.requests);
    } while (again);
  } catch (e) {
    status(e.message, true);
  } finally {
    inFlight = false;
  }
}

$("reset").addEventListener("click", () => { syncDims(); decodeCurrent(); });

// -- dropping an image in ----------------------------------------------------------------------------

async function useFile(file) {
  const m = state.model;
  const form = new FormData();
  form.append("files", file, file.name);
  status(`encoding ${file.name}...`);
  const d = await api(`/v1/models/${m.name}/encode`, form);
  const mu = d.mu[0];
  state.mapCodes.push(mu);
  drawMap();
  setBase(mu);
  status(`${file.name} encoded; its code is the sliders' centre`);
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer && e.dataTransfer.files[0];
  if (file) useFile(file).catch((err) => status(err.message, true));
});
$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) useFile(file).catch((err) => status(err.message, true));
});

// -- the latent map (2-D models) ---------------------------------------------------------------------

async function setupMap() {
  const m = state.model;
  const canvas = $("map");
  state.map = null;
  if (m.latent_dim !== 2) {
    canvas.hidden = true;
    $("map-note").textContent = `This model's latent has ${m.latent_dim} dimensions; the map is for 2-D models ` +
      "(try mnist-vae-2d or mnist-aae).";
    return;
  }
  canvas.hidden = false;
  state.map = await api(`/v1/models/${m.name}/latent-map`, { format: "json" });
  $("map-note").textContent = "The prior's density; dots: drawn samples (grey) and your images (orange). " +
    "Click anywhere to decode that point.";
  drawMap();
}

function toPixel(z) {
  const w = state.map.window, size = $("map").width;
  return [(z[0] - w.x[0]) / (w.x[1] - w.x[0]) * size, (w.y[1] - z[1]) / (w.y[1] - w.y[0]) * size];
}

function drawMap() {
  if (!state.map) return;
  const canvas = $("map"), ctx = canvas.getContext("2d"), size = canvas.width;
  const dens = state.map.density, bins = dens.length;
  const img = ctx.createImageData(bins, bins);
  for (let r = 0; r < bins; r++) {
    for (let c = 0; c < bins; c++) {
      const v = dens[r][c], i = 4 * (r * bins + c);
      img.data[i] = 255 - 95 * v; img.data[i + 1] = 255 - 80 * v; img.data[i + 2] = 255 - 40 * v; img.data[i + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = off.height = bins;
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, size, size);
  const dot = (z, colour, r) => {
    const [x, y] = toPixel(z);
    ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fillStyle = colour; ctx.fill();
  };
  for (const s of state.samples) dot(s.z, "rgba(40,40,40,0.7)", 2.5);
  for (const z of state.mapCodes) dot(z, "#e07b20", 5);
  if (state.base) dot(state.base, "#b3261e", 3.5);
}

$("map").addEventListener("click", (e) => {
  if (!state.map) return;
  const rect = e.target.getBoundingClientRect(), w = state.map.window;
  const fx = (e.clientX - rect.left) / rect.width, fy = (e.clientY - rect.top) / rect.height;
  const z = state.model.prior_mean.slice();
  z[0] = w.x[0] + fx * (w.x[1] - w.x[0]);
  z[1] = w.y[1] - fy * (w.y[1] - w.y[0]);
  setBase(z);
  drawMap();
});

// -- wiring --------------------------------------------------------------------------------------------

$("model").addEventListener("change", (e) => selectModel(e.target.value).catch((err) => status(err.message, true)));
$("draw").addEventListener("click", () => drawSamples().catch((err) => status(err.message, true)));
$("from-prior").addEventListener("change", () => drawSamples().catch((err) => status(err.message, true)));
$("key").addEventListener("change", () => loadModels().catch((err) => status(err.message, true)));
loadModels().catch((err) => status(err.message, true));
