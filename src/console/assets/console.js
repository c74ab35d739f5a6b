// Expressway console: three views (state machines, one state machine, one execution) over
// the JSON documents under /api/, polled every second. Text from the daemon (state names,
// errors, inputs) is only ever set as textContent; the one markup inserted is the graph SVG
// the daemon draws itself.
"use strict";

const view = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");
const POLL_MS = 1000;
let timer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const fmt = (n) => n === null || n === undefined ? "–"
  : n >= 1e6 ? (n / 1e6).toFixed(2) + "M" : n >= 1e4 ? (n / 1e3).toFixed(1) + "k" : String(Math.round(n * 10) / 10);
const ms = (n) => n === null || n === undefined ? "–" : n < 1 ? "<1 ms" : n >= 1000 ? (n / 1000).toFixed(2) + " s" : Math.round(n) + " ms";
const when = (t) => t ? new Date(t).toISOString().replace("T", " ").replace("Z", "") : "–";
const machineHref = (name) => "/machines/" + encodeURIComponent(name);
const executionHref = (arn) => "/executions/" + encodeURIComponent(arn);

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()));
  return r.json();
}

function setCrumbs(...parts) {
  crumbs.replaceChildren(...parts.map((p) => p.href ? el("a", { href: p.href }, p.text) : el("span", {}, p.text)));
}

function poll(fn) {
  clearTimeout(timer);
  const tick = async () => {
    try {
      await fn();
      live.classList.remove("stale");
      live.textContent = "live";
    } catch (e) {
      live.classList.add("stale");
      live.textContent = "disconnected";
      console.error(e);
    }
    timer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function card(k, v, cls) {
  return el("div", { class: "card " + (cls || "") }, el("div", { class: "k" }, k), el("div", { class: "v", "data-k": k }, v));
}

function statusBadge(s) {
  return el("span", { class: "status " + s }, s);
}

// ---- the list of state machines ----------------------------------------------------------

function machinesView() {
  setCrumbs({ text: "State machines" });
  const body = el("tbody");
  view.replaceChildren(el("h1", {}, "State machines"),
    el("table", { id: "machines" }, el("thead", {}, el("tr", {},
      el("th", {}, "Name"), el("th", { class: "n" }, "States"), el("th", { class: "n" }, "Started"),
      el("th", { class: "n" }, "Succeeded"), el("th", { class: "n" }, "Failed"),
      el("th", { class: "n" }, "Timed out"), el("th", { class: "n" }, "In flight"), el("th", {}, "Sources (lag)"))), body));
  poll(async () => {
    const data = await getJson("/api/machines");
    body.replaceChildren(...data.machines.map((m) => el("tr", {},
      el("td", {}, el("a", { href: machineHref(m.name) }, m.name)),
      el("td", { class: "n" }, m.states),
      el("td", { class: "n" }, fmt(m.executions.started)),
      el("td", { class: "n" }, fmt(m.executions.succeeded)),
      el("td", { class: "n" }, fmt(m.executions.failed)),
      el("td", { class: "n" }, fmt(m.executions.timedOut)),
      el("td", { class: "n" }, fmt(m.executions.inFlight)),
      el("td", {}, m.sources.map((s) => s.name + " (" + fmt(s.lag) + ")").join(", ") || "–"))));
  });
}

// ---- one state machine -------------------------------------------------------------------

/// Puts the graph in `box` once; returns its state nodes by name.
function drawGraph(box, svg) {
  if (!svg) {
    box.replaceChildren(el("p", { class: "muted" }, "No graph for this definition."));
    return new Map();
  }
  box.innerHTML = svg;
  const nodes = new Map();
  for (const g of box.querySelectorAll("g.state")) nodes.set(g.getAttribute("data-state"), g);
  return nodes;
}

/// A badge on a state's box in the graph (its top-right corner): executions that entered
/// it, and those that failed there. Made once, updated on every poll.
function badge(g, text, bad) {
  const svgNs = "http://www.w3.org/2000/svg";
  let b = g.querySelector("g.badge");
  if (!b) {
    const box = g.getBBox();
    b = document.createElementNS(svgNs, "g");
    b.setAttribute("class", "badge");
    b.setAttribute("transform", "translate(" + (box.x + box.width) + "," + box.y + ")");
    b.append(document.createElementNS(svgNs, "rect"), document.createElementNS(svgNs, "text"));
    g.append(b);
  }
  const [rect, label] = b.children;
  label.textContent = text;
  const w = label.getComputedTextLength() + 10;
  rect.setAttribute("x", -w + 4);
  rect.setAttribute("y", -9);
  rect.setAttribute("width", w);
  rect.setAttribute("height", 16);
  rect.setAttribute("rx", 8);
  label.setAttribute("x", -w + 9);
  label.setAttribute("y", 3);
  b.classList.toggle("bad", !!bad);
}

function machineView(name) {
  setCrumbs({ text: "State machines", href: "/" }, { text: name });
  const cards = el("div", { class: "cards" });
  const graph = el("div", { class: "graph panel", id: "graph" });
  const states = el("tbody");
  const filter = el("select", { id: "status-filter" },
    ["", "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT"].map((s) => el("option", { value: s }, s || "any status")));
  const executions = el("tbody");
  view.replaceChildren(
    el("h1", {}, name), cards,
    el("div", { class: "layout" },
      graph,
      el("div", {},
        el("h2", {}, "States"),
        el("table", { id: "states" }, el("thead", {}, el("tr", {},
          el("th", {}, "State"), el("th", { class: "n" }, "Entered/s"), el("th", { class: "n" }, "Entered"),
          el("th", { class: "n" }, "Succeeded"), el("th", { class: "n" }, "Caught"), el("th", { class: "n" }, "Failed"),
          el("th", { class: "n" }, "p50"), el("th", { class: "n" }, "p99"))), states),
        el("h2", {}, "Recent executions ", filter),
        el("table", { id: "executions" }, el("thead", {}, el("tr", {},
          el("th", {}, "Execution"), el("th", {}, "Status"), el("th", {}, "Started"),
          el("th", {}, "Failed in"), el("th", {}, "Error"))), executions))));
  let nodes = null;
  let last = null;
  poll(async () => {
    const m = await getJson("/api/machines/" + encodeURIComponent(name));
    if (nodes === null) nodes = drawGraph(graph, m.svg);
    // Rates are the daemon's own, over its last second.
    const e = m.executions;
    const started = m.executionsPerSec;
    cards.replaceChildren(
      card("Executions/s", fmt(started)),
      card("Started", fmt(e.started)),
      card("Succeeded", fmt(e.succeeded), "ok"),
      card("Failed", fmt(e.failed), e.failed ? "bad" : ""),
      card("Timed out", fmt(e.timedOut), e.timedOut ? "bad" : ""),
      card("In flight", fmt(e.inFlight)),
      ...m.sources.map((s) => card("Lag: " + s.name, fmt(s.lag))));
    const prev = new Map((last ? last.states : []).map((s) => [s.name, s]));
    states.replaceChildren(...m.states.map((s) => {
      const p = prev.get(s.name);
      const perSec = s.enteredPerSec;
      const g = nodes.get(s.name);
      if (g) {
        badge(g, s.failed ? fmt(s.entered) + " · " + fmt(s.failed) + " failed" : fmt(s.entered), s.failed > 0);
        g.classList.toggle("hot", !!perSec);
        g.classList.toggle("failing", s.failed > ((p && p.failed) || 0));
      }
      return el("tr", { "data-state": s.name },
        el("td", {}, s.name), el("td", { class: "n" }, fmt(perSec)), el("td", { class: "n" }, fmt(s.entered)),
        el("td", { class: "n" }, fmt(s.succeeded)), el("td", { class: "n" }, fmt(s.caught)),
        el("td", { class: "n" + (s.failed ? " error" : "") }, fmt(s.failed)),
        el("td", { class: "n" }, ms(s.p50Ms)), el("td", { class: "n" }, ms(s.p99Ms)));
    }));
    last = { states: m.states };
    const status = filter.value;
    const list = await getJson("/api/machines/" + encodeURIComponent(name) + "/executions?status=" + status);
    executions.replaceChildren(...(list.executions.length ? list.executions.map((x) => el("tr", {},
      el("td", {}, el("a", { href: executionHref(x.executionArn) }, x.name)),
      el("td", {}, statusBadge(x.status)),
      el("td", {}, when(x.startDate)),
      el("td", {}, x.failedState || ""),
      el("td", { class: x.error ? "error" : "" }, x.error || ""))) :
      [el("tr", {}, el("td", { colspan: 5, class: "muted" }, m.historyKept ? "No kept executions yet." : "History is off ([history] enabled = false)."))]));
  });
  filter.addEventListener("change", () => machineView(name));
}

// ---- one execution -----------------------------------------------------------------------

/// An event's details, with its JSON texts (input, output, parameters) shown as JSON.
function detailsOf(ev) {
  const key = Object.keys(ev).find((k) => k.endsWith("EventDetails"));
  if (!key) return null;
  const d = Object.assign({}, ev[key]);
  for (const k of ["input", "output", "parameters"]) {
    if (typeof d[k] === "string") {
      try { d[k] = JSON.parse(d[k]); } catch (e) { /* shown as text */ }
    }
  }
  return d;
}

async function executionView(arn) {
  clearTimeout(timer);
  const x = await getJson("/api/executions/" + encodeURIComponent(arn));
  setCrumbs({ text: "State machines", href: "/" }, { text: x.stateMachine, href: machineHref(x.stateMachine) }, { text: x.name });
  const graph = el("div", { class: "graph panel", id: "graph" });
  const summary = el("div", { class: "cards" },
    card("Status", statusBadge(x.status)),
    card("Started", when(x.startDate)),
    card("Ended", when(x.stopDate)),
    card("States entered", fmt(x.transitions)));
  const failure = x.error || x.cause ? el("div", { class: "panel", id: "failure" },
    el("div", {}, el("span", { class: "error" }, x.error || ""), x.failedState ? " in state " : "", x.failedState ? el("b", {}, x.failedState) : ""),
    el("pre", {}, x.cause || "")) : null;
  const io = el("div", {}, x.input !== null && x.input !== undefined ? el("div", { class: "panel" }, el("b", {}, "Input"), el("pre", {}, x.input)) : null,
    x.output !== null && x.output !== undefined ? el("div", { class: "panel" }, el("b", {}, "Output"), el("pre", {}, x.output)) : null);
  const events = x.events ? el("table", { id: "events" }, el("thead", {}, el("tr", {},
    el("th", { class: "n" }, "Id"), el("th", {}, "Type"), el("th", {}, "State"), el("th", {}, "Time"), el("th", {}, "Details"))),
    el("tbody", {}, x.events.map((ev) => {
      const d = detailsOf(ev);
      return el("tr", { class: ev.type.endsWith("Failed") || ev.type.endsWith("TimedOut") ? "error" : "" },
        el("td", { class: "n" }, ev.id), el("td", {}, ev.type), el("td", {}, (d && d.name) || ""),
        el("td", {}, when(ev.timestamp * 1000)), el("td", {}, d ? el("pre", {}, JSON.stringify(d, null, 1)) : ""));
    }))) : el("p", { class: "muted" }, "This execution was not sampled: only its end is kept ([history] sample_rate).");
  view.replaceChildren(el("h1", {}, x.name), summary, failure || "", el("div", { class: "layout" }, graph,
    el("div", {}, io, el("h2", {}, "History events"), events)));
  const m = await getJson("/api/machines/" + encodeURIComponent(x.stateMachine));
  const nodes = drawGraph(graph, m.svg);
  const visited = new Set(x.path);
  const failed = new Set(x.failedStates);
  for (const [name, g] of nodes) {
    g.classList.toggle("visited", visited.has(name) && !failed.has(name));
    g.classList.toggle("failed", failed.has(name));
    g.classList.toggle("unvisited", x.events !== null && !visited.has(name) && !failed.has(name));
  }
  live.textContent = x.status === "RUNNING" ? "running" : "ended";
}

// ---- routing -----------------------------------------------------------------------------

function route() {
  const path = decodeURIComponent(location.pathname);
  const fail = (e) => view.replaceChildren(el("p", { class: "error" }, String(e.message || e)));
  if (path.startsWith("/machines/")) machineView(path.slice("/machines/".length));
  else if (path.startsWith("/executions/")) executionView(path.slice("/executions/".length)).catch(fail);
  else machinesView();
}

route();
