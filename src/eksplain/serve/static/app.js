// eksplain's web page: a form that builds a workload spec, and results drawn from the /v1 API.
// Vanilla JS, no build step, no network but this server; charts are inline SVG drawn here.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const GIB = 1024 ** 3;

// Form inputs by the spec path the API names in problem+json errors[].field.
const FIELDS = {
  "model": "model", "task": "task", "precision": "precision", "engine": "engine",
  "method": "method", "tokens.input_mean": "input_mean", "tokens.output_mean": "output_mean",
  "tokens.input_p95": "input_p95", "tokens.output_p95": "output_p95", "traffic.rps": "rps",
  "traffic.peak_to_mean": "peak_to_mean", "traffic.pattern": "pattern",
  "slo.ttft_p95": "ttft_p95", "slo.tpot_p95": "tpot_p95", "slo.deadline": "deadline",
  "data.tokens": "data_tokens", "constraints.region": "region",
  "constraints.capacity_type": "capacity_type", "constraints.families": "families",
  "constraints.max_nodes": "max_nodes", "constraints.monthly_budget_usd": "budget",
  "query.duration": "duration",
};

const state = { spec: null, plan: null, sim: null, models: new Map() };

// ---------- small helpers ----------

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const num = (v, digits = 3) => Number(v).toLocaleString("en-US", { maximumSignificantDigits: digits });
const usd = (v) => v === null || v === undefined ? "–" :
  "$" + Number(v).toLocaleString("en-US", { maximumFractionDigits: v < 100 ? 2 : 0 });
const gib = (b) => b === null || b === undefined ? "–" : num(b / GIB, 3) + " GiB";

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return num(s * 1000, 3) + " ms";
  if (s < 120) return num(s, 3) + " s";
  if (s < 7200) return num(s / 60, 3) + " min";
  if (s < 172800) return num(s / 3600, 3) + " h";
  return num(s / 86400, 3) + " days";
}

function termLink(key, text) {
  return el("a", { href: "#term-" + key, class: "term-link", "data-term": key }, text || key);
}

// ---------- the form ----------

function value(id) { return $(id).value.trim(); }

function numberOr(id, scale = 1) {
  const text = value(id);
  if (text === "") return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n * scale : text; // the API names a non-number; so do we
}

function list(id) { return value(id).split(",").map((s) => s.trim()).filter(Boolean); }

function compact(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const inner = compact(v);
      if (Object.keys(inner).length) out[k] = inner;
    } else out[k] = v;
  }
  return out;
}

function task() { return $("task").value; }
function serving() { return ["inference", "batch-inference", "embedding"].includes(task()); }

function buildSpec() {
  const t = task();
  const training = !serving();
  return compact({
    model: value("model"), task: t, precision: list("precision"),
    engine: training ? undefined : $("engine").value,
    method: t === "fine-tuning" ? $("method").value : undefined,
    tokens: {
      input_mean: numberOr("input_mean"), output_mean: numberOr("output_mean"),
      input_p95: numberOr("input_p95"), output_p95: numberOr("output_p95"),
    },
    traffic: training ? undefined : {
      rps: numberOr("rps"), peak_to_mean: numberOr("peak_to_mean"), pattern: $("pattern").value,
    },
    slo: {
      ttft_p95: t === "inference" ? numberOr("ttft_p95", 0.001) : undefined,
      tpot_p95: t === "inference" ? numberOr("tpot_p95", 0.001) : undefined,
      deadline: t === "inference" || t === "embedding" ? undefined : numberOr("deadline", 3600),
    },
    data: training ? { tokens: value("data_tokens") || undefined } : undefined,
    constraints: {
      region: value("region") || undefined, capacity_type: $("capacity_type").value,
      families: list("families"), max_nodes: numberOr("max_nodes"),
      monthly_budget_usd: numberOr("budget"),
    },
  });
}

function showForTask() {
  const t = task();
  const show = {
    "serving-only": serving(), "training-only": !serving(), "inference-only": t === "inference",
    "batch-only": t !== "inference" && t !== "embedding",
  };
  for (const [cls, visible] of Object.entries(show)) {
    for (const node of document.querySelectorAll("." + cls)) node.hidden = !visible;
  }
  if (t === "pre-training") $("method").closest(".field").hidden = true;
  for (const set of document.querySelectorAll("#spec-form fieldset")) {
    const fields = [...set.querySelectorAll(".field")];
    const gone = (f) => f.hidden || (f.parentElement.classList.contains("row") && f.parentElement.hidden);
    if (set.classList.length === 0) set.hidden = fields.every(gone);
  }
}

function clearErrors() {
  for (const node of document.querySelectorAll(".error")) node.textContent = "";
  for (const node of document.querySelectorAll("[aria-invalid]")) {
    node.removeAttribute("aria-invalid");
  }
}

// The input for an API field path: itself, else the first input under it ("traffic" -> rps).
function inputFor(field) {
  if (FIELDS[field]) return $(FIELDS[field]);
  const parts = field.split(".");
  while (parts.length) {
    const prefix = parts.join(".");
    const key = Object.keys(FIELDS).find((k) => k === prefix || k.startsWith(prefix + "."));
    if (key) return $(FIELDS[key]);
    parts.pop();
  }
  return null;
}

function showProblem(problem) {
  let placed = false;
  let first = null;
  for (const err of problem.errors || []) {
    const input = inputFor(err.field);
    if (!input || input.closest("[hidden]")) continue;
    const slot = $(input.id + "-error");
    slot.textContent = (slot.textContent ? slot.textContent + " " : "") + err.msg;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", slot.id);
    first = first || input;
    placed = true;
  }
  let text = problem.detail || "The request failed.";
  if (problem.suggestions && problem.suggestions.length) {
    text += " Did you mean: " + problem.suggestions.join(", ") + "?";
  }
  if (problem.hint) text += " (" + problem.hint + ")";
  const errors = problem.errors || [];
  if (placed && errors.length === 1 && errors[0].msg === problem.detail) {
    $(first.id + "-error").textContent = text; // the server's own message, with its hint
  } else if (!placed) {
    $("form-error").textContent = text;
  }
  if (first) first.focus();
}

async function call(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw { detail: "The server did not answer: " + err.message, errors: [] };
  }
  const type = response.headers.get("content-type") || "";
  if (!response.ok) {
    if (type.includes("json")) throw await response.json();
    throw { detail: `HTTP ${response.status}`, errors: [] };
  }
  if (type.includes("json")) return response.json();
  if (type.includes("zip")) return response.blob();
  return response.text();
}

async function loadModels() {
  const models = await call("GET", "/v1/models");
  const list = $("model-list");
  for (const m of models) {
    state.models.set(m.id.toLowerCase(), m);
    for (const alias of m.aliases) state.models.set(alias.toLowerCase(), m);
    const size = num(m.params_total / 1e9, 3) + "B params" +
      (m.params_active !== m.params_total ? `, ${num(m.params_active / 1e9, 3)}B active` : "");
    list.append(el("option", { value: m.id, label: `${m.model_type}, ${size}` }));
  }
  describeModel();
}

function describeModel() {
  const m = state.models.get(value("model").toLowerCase());
  $("model-note").textContent = m ? `${m.id}: ${m.model_type}, ` +
    `${num(m.params_total / 1e9, 3)}B parameters, ${m.num_layers} layers, ` +
    `context ${m.max_context.toLocaleString("en-US")} tokens` : "";
}

// ---------- submit ----------

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const spec = buildSpec();
  $("submit").disabled = true;
  $("busy").textContent = "Planning…";
  try {
    const plan = await call("POST", "/v1/plan", spec);
    state.spec = spec;
    state.plan = plan;
    state.sim = null;
    showPlan(plan);
    $("busy").textContent = "Rendering manifests" + (wantsSim() ? " and simulating…" : "…");
    await Promise.all([loadManifests(spec), simulate(spec, plan)]);
    $("busy").textContent = "Done.";
  } catch (problem) {
    showProblem(problem);
    $("busy").textContent = "";
  } finally {
    $("submit").disabled = false;
  }
}

function wantsSim() { return task() === "inference" && value("duration") !== ""; }

async function loadManifests(spec) {
  $("manifests").textContent = "";
  $("manifest-caption").textContent = "Rendering…";
  $("download").disabled = true;
  try {
    const text = await call("POST", "/v1/render?format=yaml", spec);
    const docs = text.split(/^---$/m).filter((d) => d.trim()).length;
    $("manifests").textContent = text;
    $("manifest-caption").textContent = `${docs} Kubernetes objects for the choice, ` +
      "validated offline; the zip holds one file per concern, a kustomization.yaml and a README.";
    $("download").disabled = false;
  } catch (problem) {
    $("manifest-caption").textContent = "No manifests: " + problem.detail +
      (problem.hint ? " (" + problem.hint + ")" : "");
  }
}

async function simulate(spec, plan) {
  $("sim-card").hidden = !wantsSim() || !plan.choice;
  if ($("sim-card").hidden) return;
  $("sim-caption").textContent = "Simulating…";
  $("sim-chart").replaceChildren();
  $("sim-latency").replaceChildren();
  const query = "?duration=" + encodeURIComponent(value("duration"));
  try {
    state.sim = await call("POST", "/v1/simulate" + query, spec);
    showSim(state.sim);
  } catch (problem) {
    $("sim-caption").textContent = "No simulation: " + problem.detail;
    if ((problem.errors || []).length) showProblem(problem);
  }
}

async function download() {
  $("download-status").textContent = "Preparing…";
  try {
    const blob = await call("POST", "/v1/render?format=zip", state.spec);
    const name = (state.plan.model.split("/").pop() || "eksplain").toLowerCase() +
      "-manifests.zip";
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $("download-status").textContent = `Saved ${name}.`;
  } catch (problem) {
    $("download-status").textContent = "Failed: " + problem.detail;
  }
}

// ---------- the plan ----------

function costOf(c) { return c.usd_per_month ?? c.usd_total; }
function latencyName(t) {
  return { inference: "time per output token", embedding: "time per batch" }[t] || "time to finish";
}
function costLabel(plan) {
  return plan.choice && plan.choice.usd_per_month !== null ? "$ a month" : "$ in total";
}

function showPlan(plan) {
  $("empty").hidden = true;
  $("answer").hidden = false;
  const c = plan.choice;
  const rejected = plan.rejections.length;
  $("summary").replaceChildren(
    el("strong", {}, c.label), ` for ${plan.model} (${plan.task}): `,
    `${c.nodes} node${c.nodes === 1 ? "" : "s"} of ${c.instance_type}, ${c.devices} × ${c.accelerator}`,
    `, ${c.weight_format} weights. ${plan.evaluated} configurations evaluated, ` +
    `${plan.alternatives.length + 1} meet the spec (the choice and its alternatives), ` +
    `${rejected} rejected.`);
  const rows = [
    ["Per month", usd(c.usd_per_month)], ["Per hour at the peak", usd(c.usd_per_hour)],
    ["Total", usd(c.usd_total)],
    [latencyName(plan.task).replace(/^./, (ch) => ch.toUpperCase()), seconds(c.latency_s)],
    ["Time to first token", seconds(c.ttft_s)],
    ["Memory per device", `${gib(c.memory_bytes_per_device)} of ${gib(c.capacity_bytes_per_device)}`],
  ];
  if (plan.autoscaling) {
    const { min_replicas: lo, max_replicas: hi } = plan.autoscaling;
    rows.push(["Replicas", lo === hi ? String(lo) : `${lo}–${hi}`]);
  }
  if (plan.cold_start) rows.push(["Cold start (known parts)", seconds(plan.cold_start.total_known_s)]);
  $("bill").replaceChildren(...rows.filter(([, v]) => v !== "–").map(([k, v]) =>
    el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  $("pareto-title").textContent = plan.task === "inference" || plan.task === "embedding" ?
    "Cost vs latency" : "Cost vs time";
  $("decisions").replaceChildren(...plan.decisions.map((d) => el("li", {}, d.text, " ",
    el("span", { class: "terms" }, d.terms.map((t) => termLink(t))))));
  showAlternatives(plan, 10);
  drawAll();
}

function showAlternatives(plan, limit) {
  const pareto = new Set(plan.pareto);
  const head = el("tr", {}, ["Configuration", "Nodes", "Devices", costLabel(plan),
    plan.task === "inference" ? "TPOT" : "Time", "TTFT", "Memory/device", "Pareto"]
    .map((h) => el("th", { scope: "col" }, h)));
  const shown = plan.alternatives.slice(0, limit);
  const body = shown.map((c) => el("tr", { class: c.label === plan.choice.label ? "chosen" : null },
    el("th", { scope: "row" }, c.label), el("td", {}, c.nodes), el("td", {}, c.devices),
    el("td", {}, usd(costOf(c))), el("td", {}, seconds(c.latency_s)),
    el("td", {}, seconds(c.ttft_s)), el("td", {}, gib(c.memory_bytes_per_device)),
    el("td", {}, pareto.has(c.label) ? "yes" : "")));
  const rows = [el("thead", {}, head), el("tbody", {}, body)];
  if (plan.alternatives.length > limit) {
    rows.push(el("tfoot", {}, el("tr", {}, el("td", { colspan: 8 }, el("button", {
      type: "button", class: "link", onclick: () => showAlternatives(plan, Infinity),
    }, `Show all ${plan.alternatives.length}`)))));
  }
  $("alternatives").replaceChildren(...rows);
}

// ---------- charts (inline SVG) ----------

function niceTicks(lo, hi, count = 5) {
  const span = hi - lo || Math.abs(hi) || 1;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  return ticks;
}

function logTicks(lo, hi) {
  const ticks = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  return ticks.length >= 2 ? ticks : [lo, hi];
}

// A scale over [lo, hi]: logarithmic when the values span more than 20x.
function scale(values, from, to) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  const log = lo > 0 && hi / lo > 20;
  if (log) { lo /= 1.2; hi *= 1.2; } else {
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
    lo = Math.max(0, lo - pad); hi += pad;
  }
  const f = log ? Math.log10 : (v) => v;
  const map = (v) => from + (f(v) - f(lo)) / (f(hi) - f(lo) || 1) * (to - from);
  map.ticks = log ? logTicks(lo, hi) : niceTicks(lo, hi);
  map.log = log;
  return map;
}

function chartBox(container, height) {
  const width = Math.max(container.clientWidth, 280);
  return svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    class: "svg-chart" });
}

function paretoChart(plan) {
  const box = $("pareto-chart");
  const everyone = [plan.choice, ...plan.alternatives.filter((c) => c.label !== plan.choice.label)];
  const points = everyone.filter((c) => costOf(c) !== null && c.latency_s !== null);
  if (!points.length) { box.replaceChildren(el("p", {}, "No priced alternatives.")); return; }
  const height = 300;
  const root = chartBox(box, height);
  const width = Number(root.getAttribute("width"));
  const m = { left: 64, right: 16, top: 12, bottom: 44 };
  const x = scale(points.map((c) => c.latency_s), m.left, width - m.right);
  const y = scale(points.map(costOf), height - m.bottom, m.top);
  const xLabel = latencyName(plan.task);
  root.setAttribute("aria-label", `Cost against ${xLabel} for ${points.length} configurations; ` +
    `the choice, ${plan.choice.label}, is highlighted`);
  axes(root, x, y, { m, width, height, xFormat: seconds, yFormat: usd, xLabel,
    yLabel: costLabel(plan) });
  const pareto = plan.pareto.map((l) => points.find((c) => c.label === l)).filter(Boolean)
    .sort((a, b) => a.latency_s - b.latency_s);
  root.append(svg("polyline", { class: "front", points: pareto.map((c) =>
    `${x(c.latency_s)},${y(costOf(c))}`).join(" ") }));
  const onFront = new Set(plan.pareto);
  for (const c of points) {
    if (c.label === plan.choice.label) continue;
    root.append(svg("circle", { cx: x(c.latency_s), cy: y(costOf(c)), r: onFront.has(c.label) ? 5 : 3.5,
      class: onFront.has(c.label) ? "dot front-dot" : "dot" },
    svg("title", {}, `${c.label}: ${usd(costOf(c))}, ${seconds(c.latency_s)}`)));
  }
  const c = plan.choice;
  const cx = x(c.latency_s);
  const cy = y(costOf(c));
  root.append(svg("circle", { cx, cy, r: 8, class: "choice-dot" },
    svg("title", {}, `choice: ${c.label}`)));
  const right = cx > width * 0.6;
  root.append(svg("text", { x: cx + (right ? -12 : 12), y: cy - 10, class: "choice-label",
    "text-anchor": right ? "end" : "start" }, "choice: " + c.label));
  box.replaceChildren(root);
  $("pareto-caption").textContent = `${points.length} configurations that meet the spec; ` +
    `the line joins the ${pareto.length} that no other beats on both cost and ${xLabel}` +
    (x.log || y.log ? " (logarithmic axes)." : ".");
}

function axes(root, x, y, o) {
  const { m, width, height } = o;
  for (const t of y.ticks) {
    root.append(svg("line", { x1: m.left, x2: width - m.right, y1: y(t), y2: y(t), class: "grid" }),
      svg("text", { x: m.left - 6, y: y(t) + 4, "text-anchor": "end", class: "tick" }, o.yFormat(t)));
  }
  let last = -Infinity;
  for (const t of x.ticks) {
    if (x(t) - last < 56) continue; // keep labels from overlapping on narrow screens
    last = x(t);
    root.append(svg("line", { x1: x(t), x2: x(t), y1: m.top, y2: height - m.bottom, class: "grid" }),
      svg("text", { x: x(t), y: height - m.bottom + 16, "text-anchor": "middle", class: "tick" },
        o.xFormat(t)));
  }
  root.append(svg("text", { x: (m.left + width - m.right) / 2, y: height - 6,
    "text-anchor": "middle", class: "axis-label" }, o.xLabel));
  root.append(svg("text", { x: 12, y: m.top + 2, class: "axis-label",
    transform: `rotate(-90 12 ${m.top + 2})`, "text-anchor": "end" }, o.yLabel));
}

function memoryParts(plan) {
  const split = plan.choice.details.weights_bytes !== undefined;
  return [["weights", "weights"],
    ["rest", split ? "KV cache, activations, overhead" : "in use (weights, gradients, optimizer, activations)"],
    ["free", "free"]];
}

function memoryChart(plan) {
  const box = $("memory-chart");
  const picks = [plan.choice, ...plan.alternatives.filter((c) => c.label !== plan.choice.label)]
    .slice(0, 5);
  const rowH = 34;
  const m = { left: 12, right: 16, top: 28, bottom: 30 };
  const narrow = box.clientWidth < 480;
  const height = m.top + m.bottom + picks.length * rowH * 1.5 + (narrow ? 16 : 0);
  const root = chartBox(box, height);
  const width = Number(root.getAttribute("width"));
  const most = Math.max(...picks.map((c) => Math.max(c.capacity_bytes_per_device, c.memory_bytes_per_device)));
  const x = (b) => m.left + b / most * (width - m.left - m.right);
  root.setAttribute("aria-label", "Memory per device: weights, KV cache and the rest, and what " +
    "is left, for the choice and the cheapest alternatives");
  let legendX = m.left;
  let legendY = 4;
  const PARTS = memoryParts(plan);
  for (const [key, label] of PARTS.filter(([k]) => k !== "weights" || PARTS[1][1].startsWith("KV"))) {
    const w = 28 + label.length * 6.2;
    if (legendX + w > width) { legendX = m.left; legendY += 16; }
    root.append(svg("rect", { x: legendX, y: legendY, width: 12, height: 12, class: "mem-" + key }),
      svg("text", { x: legendX + 16, y: legendY + 10, class: "tick" }, label));
    legendX += w;
  }
  m.top += legendY - 4;
  picks.forEach((c, i) => {
    const top = m.top + i * rowH * 1.5;
    const used = c.memory_bytes_per_device;
    const weights = Math.min(c.details.weights_bytes ?? 0, used);
    const parts = { weights, rest: used - weights, free: Math.max(c.capacity_bytes_per_device - used, 0) };
    root.append(svg("text", { x: m.left, y: top + 11, class: c === plan.choice ? "bar-label chosen" : "bar-label" },
      (c === plan.choice ? "choice: " : "") +
      `${c.label}: ${num(used / GIB)} of ${gib(c.capacity_bytes_per_device)}`));
    let start = 0;
    for (const [key, label] of PARTS) {
      const size = parts[key];
      if (size <= 0) continue;
      root.append(svg("rect", { x: x(start), y: top + 16, width: Math.max(x(start + size) - x(start), 1),
        height: rowH * 0.6, class: "mem-" + key }, svg("title", {}, `${label}: ${gib(size)}`)));
      start += size;
    }
  });
  for (const t of niceTicks(0, most / GIB, 5)) {
    if (t * GIB > most) continue;
    const anchor = t === 0 ? "start" : x(t * GIB) > width - 40 ? "end" : "middle";
    root.append(svg("text", { x: x(t * GIB), y: height - 8, "text-anchor": anchor, class: "tick" },
      `${num(t)} GiB`));
  }
  box.replaceChildren(root);
}

const SERIES_NAMES = {
  completed: "requests completed per minute", waiting: "queue: requests waiting",
  running: "requests running", replicas: "replicas",
};

function simChart(sim) {
  const box = $("sim-chart");
  const rows = sim.timeline;
  if (!rows.length) { box.replaceChildren(el("p", {}, "The run was shorter than a minute.")); return; }
  const keys = Object.keys(rows[0]).filter((k) => k !== "minute" && typeof rows[0][k] === "number");
  const order = ["completed", "replicas", "waiting", "running"];
  keys.sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  const panel = 78;
  const m = { left: 56, right: 16, top: 8, bottom: 26 };
  const height = m.top + m.bottom + keys.length * panel;
  const root = chartBox(box, height);
  const width = Number(root.getAttribute("width"));
  const last = rows[rows.length - 1].minute;
  const x = (minute) => m.left + (minute - 1) / Math.max(last - 1, 1) * (width - m.left - m.right);
  root.setAttribute("aria-label", `Simulated ${keys.join(", ")} per minute over ${last} minutes`);
  keys.forEach((key, i) => {
    const top = m.top + i * panel;
    const values = rows.map((r) => r[key]);
    const most = Math.max(...values, 1);
    const y = (v) => top + panel - 10 - v / most * (panel - 26);
    const line = rows.map((r) => `${x(r.minute)},${y(r[key])}`).join(" ");
    root.append(svg("text", { x: m.left, y: top + 10, class: "bar-label" },
      SERIES_NAMES[key] || key.replaceAll("_", " ")),
    svg("line", { x1: m.left, x2: width - m.right, y1: y(0), y2: y(0), class: "grid" }),
    svg("text", { x: m.left - 6, y: y(most) + 4, "text-anchor": "end", class: "tick" }, num(most)),
    svg("text", { x: m.left - 6, y: y(0) + 4, "text-anchor": "end", class: "tick" }, "0"),
    svg("polyline", { points: rows.length > 1 ? line : `${m.left},${y(values[0])} ${width - m.right},${y(values[0])}`,
      class: "series series-" + (i % 4) }));
  });
  let previous = -Infinity;
  for (const t of niceTicks(1, last, 6)) {
    if (t < 1 || t > last || x(t) - previous < 56) continue;
    previous = x(t);
    const anchor = x(t) > width - 40 ? "end" : "middle";
    root.append(svg("text", { x: x(t), y: height - 8, "text-anchor": anchor, class: "tick" }, `${t} min`));
  }
  box.replaceChildren(root);
}

function showSim(sim) {
  const r = sim.requests;
  const slo = Object.entries(sim.slo_attainment).map(([k, v]) =>
    `${k.replace("_p95", "")} within target for ${num(v * 100)}% of requests`).join("; ");
  $("sim-caption").textContent = `${sim.choice}, ${sim.replicas} replicas, ` +
    `${seconds(sim.simulated_s)} simulated; traffic: ${sim.traffic}. ${r.arrived.toLocaleString("en-US")} ` +
    `arrived, ${r.completed.toLocaleString("en-US")} completed, ${r.in_flight.toLocaleString("en-US")} in flight` +
    (slo ? `. SLO: ${slo}.` : ".") + (sim.stopped ? ` Stopped: ${sim.stopped}.` : "");
  const head = el("tr", {}, ["Latency", "mean", "p50", "p90", "p99", "max"].map((h) => el("th", { scope: "col" }, h)));
  const names = { queue_wait: "queue wait", ttft: "first token", tpot: "per output token", e2e: "end to end" };
  const body = Object.entries(names).map(([key, name]) => el("tr", {}, el("th", { scope: "row" }, name),
    ["mean_s", "p50_s", "p90_s", "p99_s", "max_s"].map((f) => el("td", {}, seconds(sim[key][f])))));
  $("sim-latency").replaceChildren(el("thead", {}, head), el("tbody", {}, body));
  simChart(sim);
}

function drawAll() {
  if (!state.plan) return;
  paretoChart(state.plan);
  memoryChart(state.plan);
  if (state.sim) simChart(state.sim);
}

// ---------- glossary ----------

async function openTerm(key) {
  const dialog = $("term-dialog");
  $("term-title").textContent = key;
  $("term-body").replaceChildren(el("p", {}, "Loading…"));
  if (!dialog.open) dialog.showModal();
  try {
    const t = await call("GET", "/v1/explain/" + encodeURIComponent(key));
    $("term-title").textContent = t.term;
    const parts = [el("p", {}, t.definition),
      el("h3", {}, "On the infrastructure"), el("p", {}, t.infrastructure)];
    if (t.eksplain) parts.push(el("h3", {}, "In eksplain"), el("p", {}, t.eksplain));
    if (t.impact) {
      parts.push(el("h3", {}, t.impact.title), el("div", { class: "table-wrap" }, el("table", {},
        el("thead", {}, el("tr", {}, t.impact.headers.map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, t.impact.rows.map((row) => el("tr", {}, row.map((c) => el("td", {}, c))))))));
      for (const note of t.impact.notes) parts.push(el("p", { class: "note" }, note));
    }
    if (t.related.length) {
      parts.push(el("p", {}, "Related: ", t.related.flatMap((k, i) => [i ? ", " : "", termLink(k)])));
    }
    $("term-body").replaceChildren(...parts);
  } catch (problem) {
    $("term-body").replaceChildren(el("p", { class: "error" }, problem.detail));
  }
}

function onTermClick(event) {
  const link = event.target.closest("[data-term]");
  if (!link) return;
  event.preventDefault();
  openTerm(link.dataset.term);
}

// ---------- start ----------

function init() {
  $("spec-form").addEventListener("submit", submit);
  $("task").addEventListener("change", showForTask);
  $("model").addEventListener("input", describeModel);
  $("download").addEventListener("click", download);
  $("term-close").addEventListener("click", () => $("term-dialog").close());
  document.addEventListener("click", onTermClick);
  for (const link of document.querySelectorAll("a.term")) {
    link.setAttribute("aria-label", "explain " + link.dataset.term);
  }
  let timer = null;
  window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(drawAll, 120); });
  showForTask();
  loadModels().catch((problem) => { $("form-error").textContent = problem.detail; });
}

document.addEventListener("DOMContentLoaded", init);
