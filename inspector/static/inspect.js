// rerankforge inspect: the page. Every text from the collection is put in the page as a text node (el() below),
// never parsed as HTML, so a document holding markup or a script shows it as characters.
"use strict";

const state = { info: null, rows: null, sort: { key: "reranked_change", dir: 1 }, filter: "all", judge: "reranked",
                text: "", query: null, selected: null, trainingFlaggedOnly: false };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function say(text, kind) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = kind || "";
}

const fmt = (x, digits = 4) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const signed = (x) => (x === null || x === undefined ? "–" : (x > 0 ? "+" : "") + Number(x).toFixed(4));

// ------------------------------------------------------------------ routing

async function route() {
  const hash = decodeURIComponent(location.hash.slice(1) || "/");
  const view = document.getElementById("view");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", hash.startsWith("/" + a.dataset.view)
    || (a.dataset.view === "queries" && (hash === "/" || hash.startsWith("/query")))));
  try {
    if (!state.info) state.info = await api("/api/info");
    document.getElementById("where").textContent = `${state.info.collection}/${state.info.split} · labels: ${
      state.info.labels_path}`;
    let content;
    if (hash.startsWith("/query/")) content = await queryView(hash.slice("/query/".length));
    else if (hash.startsWith("/training/")) content = await groupView(Number(hash.slice("/training/".length)));
    else if (hash.startsWith("/training")) content = await trainingView();
    else if (hash.startsWith("/suggestions")) content = await suggestionsView();
    else if (hash.startsWith("/charts")) content = await chartsView();
    else if (hash.startsWith("/search/")) content = await searchView(hash.slice("/search/".length));
    else content = await queriesView();
    view.replaceChildren(content);
    if (content.afterMount) content.afterMount();
  } catch (error) {
    view.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

// ------------------------------------------------------------------ queries

async function queriesView() {
  if (!state.rows) state.rows = (await api("/api/queries")).rows;
  const info = state.info;
  if (!info.report) return el("p", { class: "muted" }, "No report loaded: start inspect with --report FOLDER (what " +
    "`rerankforge eval --output` writes) to see the queries. The search box works with --model.");
  const hasServed = Boolean(info.report.served);
  const counts = { all: 0, win: 0, loss: 0, tie: 0, unjudged: 0 };
  for (const row of state.rows) {
    counts.all++;
    counts[row[`${state.judge}_outcome`]]++;
    if (row.unjudged > 0) counts.unjudged++;
  }
  const filters = el("div", { class: "filters" },
    ["all", "win", "loss", "tie", "unjudged"].map((f) => el("button", {
      class: state.filter === f ? "active" : "", "data-filter": f,
      onclick: () => { state.filter = f; route(); } }, `${{ all: "all", win: "wins", loss: "losses", tie: "ties",
      unjudged: "unjudged in top 10" }[f]} (${counts[f]})`)),
    hasServed ? el("label", {}, " judge by ", el("select", { id: "judge", onchange: (e) => {
      state.judge = e.target.value; route(); } },
      el("option", { value: "reranked", selected: state.judge === "reranked" }, "reranker alone"),
      el("option", { value: "served", selected: state.judge === "served" }, "served ranking"))) : null,
    el("input", { id: "query-filter", type: "search", placeholder: "filter by text or id", value: state.text,
      oninput: (e) => { state.text = e.target.value; fill(); } }));
  const columns = [["id", "query"], ["text", "text"], ["first", info.report.first_stage],
                   ["reranked", "reranked"], ["reranked_change", "Δ reranked"]];
  if (hasServed) columns.push(["served", "served"], ["served_change", "Δ served"]);
  columns.push(["unjudged", "unjudged@10"], ["labels", "labels"]);
  const head = el("tr", {}, columns.map(([key, title]) => el("th", { class: "sortable", "data-key": key,
    onclick: () => { state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 }; route(); } },
    title, state.sort.key === key ? (state.sort.dir > 0 ? " ▲" : " ▼") : "")));
  const body = el("tbody");
  const table = el("table", { class: "queries", id: "queries" }, el("thead", {}, head), body);
  function fill() {
    const needle = state.text.toLowerCase();
    const shown = state.rows.filter((r) => (state.filter === "all" || (state.filter === "unjudged" ? r.unjudged > 0
      : r[`${state.judge}_outcome`] === state.filter)) && (!needle || r.text.toLowerCase().includes(needle)
      || r.id.toLowerCase().includes(needle)));
    const { key, dir } = state.sort;
    shown.sort((a, b) => (a[key] < b[key] ? -dir : a[key] > b[key] ? dir : 0));
    body.replaceChildren(...shown.map((r) => el("tr", { class: r[`${state.judge}_outcome`], "data-id": r.id,
      onclick: () => { location.hash = "#/query/" + encodeURIComponent(r.id); } },
      columns.map(([k]) => el("td", { class: k.endsWith("change") ? "num " + (r[k] > 0 ? "up" : r[k] < 0 ? "down" : "")
        : typeof r[k] === "number" ? "num" : "" }, k.endsWith("change") ? signed(r[k])
        : typeof r[k] === "number" && !Number.isInteger(r[k]) ? fmt(r[k]) : r[k])))));
    say(`${shown.length} of ${state.rows.length} queries`);
  }
  fill();
  return el("section", {}, el("h1", {}, `Queries: ${info.report.first_stage} vs reranked`),
    el("p", { class: "muted" }, `nDCG@10 of every evaluated query; the reranker rescored the first stage's top ${
      info.report.depth}. Click a query to see its lists.`), filters, table);
}

// ------------------------------------------------------------------ one query

const STOP = new Set("the a an of and or in on to for with by is are was were be been that this from as at it its not no"
  .split(" "));

function highlighted(text, terms) {
  if (!terms.length) return [text];
  const pattern = new RegExp(`(${terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "giu");
  return text.split(pattern).map((part, i) => (i % 2 ? el("mark", {}, part) : part));
}

function queryTerms(text) {
  return [...new Set((text.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter((t) => t.length > 2 && !STOP.has(t)))];
}

function gradeBadge(doc) {
  if (doc.grade === null || doc.grade === undefined) return el("span", { class: "badge unjudged" }, "unjudged");
  return el("span", { class: doc.grade > 0 ? "badge relevant" : "badge nonrelevant" },
    doc.grade > 0 ? `relevant (${doc.grade})` : "judged not relevant");
}

function labelBadge(label) {
  if (!label) return null;
  return el("span", { class: label.relevance > 0 ? "badge label-yes" : "badge label-no",
    title: `${label.time}${label.annotator ? " by " + label.annotator : ""}` },
    `labelled ${label.relevance > 0 ? "relevant (" + label.relevance + ")" : "not relevant"}`);
}

function labelButtons(queryId, docId, onDone) {
  const max = state.info.max_grade;
  const grades = [];
  for (let g = 0; g <= max; g++) grades.push(g);
  return el("span", { class: "label-buttons" },
    grades.map((g) => el("button", { class: "label", "data-grade": g, title: `key ${g}`,
      onclick: (e) => { e.stopPropagation(); sendLabel(queryId, docId, g).then(onDone); } },
      g === 0 ? "0 not relevant" : max === 1 ? "1 relevant" : `${g}`)),
    el("button", { class: "skip", title: "key s", onclick: (e) => { e.stopPropagation();
      step(e.currentTarget.closest(".doc"), 1); } }, "s skip"));
}

async function sendLabel(queryId, docId, relevance) {
  const label = await api("/api/labels", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ query_id: queryId, doc_id: docId, relevance, annotator: state.info.annotator || "" }) });
  state.rows = null; // label counts changed
  say(`labelled ${docId} ${relevance > 0 ? "relevant (" + relevance + ")" : "not relevant"} for query ${queryId}`,
    "ok");
  return label;
}

function moveOf(doc, key) {
  if (key === "first") {
    const to = doc.reranked ? doc.reranked.rank : null;
    return to === null ? (doc.first.rank > state.query.depth ? "not reranked" : "") : `→ ${to} reranked`;
  }
  if (!doc.first) return "new";
  const move = doc.first.rank - doc[key].rank;
  return move > 0 ? `↑${move}` : move < 0 ? `↓${-move}` : "=";
}

function docCard(q, key, docId) {
  const doc = q.docs[docId];
  const terms = queryTerms(q.text);
  const part = doc[key];
  const scores = [
    doc.first ? `first stage ${fmt(doc.first.score)}` : null,
    doc.reranked ? `reranker ${fmt(doc.reranked.score)}` : null,
    doc.served ? `served ${fmt(doc.served.score)}` : null,
    doc.live ? `live ${fmt(doc.live.score)} · p(relevant) ${fmt(doc.live.probability, 3)}` : null,
  ].filter(Boolean).join(" · ");
  const card = el("article", { class: "doc" + (doc.grade > 0 ? " is-relevant" : ""), tabindex: "0",
      "data-doc": docId, "data-list": key, "data-grade": doc.grade === null ? "" : doc.grade,
      onclick: () => select(card) },
    el("div", { class: "doc-head" },
      el("span", { class: "rank" }, `#${part.rank}`),
      el("span", { class: "move" }, moveOf(doc, key)),
      gradeBadge(doc), labelBadge(doc.label),
      el("span", { class: "doc-id", dir: "auto" }, docId)),
    el("div", { class: "scores" }, scores),
    doc.title ? el("h3", { dir: "auto" }, highlighted(doc.title, terms)) : null,
    el("p", { class: "passage", dir: "auto" }, highlighted(doc.text, terms)),
    labelButtons(q.id, docId, () => refreshQuery(docId, key)));
  return card;
}

async function queryView(queryId) {
  const q = await api("/api/query?id=" + encodeURIComponent(queryId));
  state.query = q;
  const columns = [["first", q.names.first], ["reranked", `reranked (${q.names.reranked})`],
                   ["served", `served (${q.names.served})`]].filter(([k]) => q.lists[k]);
  const lists = el("div", { class: "lists cols-" + columns.length },
    columns.map(([key, title]) => {
      const cards = [];
      q.lists[key].forEach((docId, i) => {
        if (key === "first" && i === q.depth) cards.push(el("div", { class: "depth-line" },
          `the reranker saw the top ${q.depth}; below, what it never saw`));
        cards.push(docCard(q, key, docId));
      });
      return el("section", { class: "list", "data-list": key },
        el("h2", {}, title, el("span", { class: "ndcg" }, ` nDCG@10 ${fmt(q.ndcg[key])}`)), cards);
    }));
  const ids = state.rows ? state.rows.map((r) => r.id) : [];
  const at = ids.indexOf(q.id);
  const nav = el("div", { class: "query-nav" },
    at > 0 ? el("a", { href: "#/query/" + encodeURIComponent(ids[at - 1]) }, "← previous query") : null,
    at >= 0 && at < ids.length - 1 ? el("a", { href: "#/query/" + encodeURIComponent(ids[at + 1]) },
      "next query →") : null);
  const live = q.live ? `Live: the first stage's top ${q.live.documents} scored now by the model (${q.live.backend}) ` +
    `in ${(q.live.seconds * 1000).toFixed(0)} ms.` : "No model loaded: no live scores.";
  const section = el("section", { class: "query" },
    el("a", { href: "#/" }, "← all queries"), nav,
    el("h1", { dir: "auto" }, q.text),
    el("p", { class: "muted" }, `query ${q.id} · ${q.relevant} relevant of ${q.judged} judged · reranking depth ${
      q.depth} · ${live}`),
    el("p", { class: "keys" }, "Keys: j/k or ↓/↑ next/previous document, h/l or ←/→ other list, ",
      `0–${state.info.max_grade} label, s skip.`),
    lists);
  section.afterMount = () => {
    const first = document.querySelector(".doc");
    if (first) select(first);
  };
  return section;
}

async function refreshQuery(docId, key) {
  const q = await api("/api/query?id=" + encodeURIComponent(state.query.id));
  state.query.docs[docId].label = q.docs[docId].label;
  document.querySelectorAll(`.doc[data-doc="${CSS.escape(docId)}"]`).forEach((card) => {
    const head = card.querySelector(".doc-head");
    head.querySelectorAll(".label-yes, .label-no").forEach((b) => b.remove());
    const badge = labelBadge(q.docs[docId].label);
    if (badge) head.insertBefore(badge, head.querySelector(".doc-id"));
  });
  const current = document.querySelector(`.doc[data-list="${key}"][data-doc="${CSS.escape(docId)}"]`);
  if (current) step(current, 1);
}

function select(card) {
  document.querySelectorAll(".doc.selected").forEach((c) => c.classList.remove("selected"));
  card.classList.add("selected");
  card.focus({ preventScroll: true });
  card.scrollIntoView({ block: "nearest" });
  state.selected = card;
}

function step(card, by) {
  const cards = [...card.parentElement.querySelectorAll(".doc")];
  const next = cards[cards.indexOf(card) + by];
  if (next) select(next);
}

function otherList(card, by) {
  const lists = [...document.querySelectorAll(".list")];
  const at = lists.indexOf(card.closest(".list"));
  const target = lists[at + by];
  if (!target) return;
  const same = target.querySelector(`.doc[data-doc="${CSS.escape(card.dataset.doc)}"]`);
  select(same || target.querySelector(".doc"));
}

document.addEventListener("keydown", (event) => {
  if (event.target.closest && event.target.closest("input, select, textarea")) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const card = state.selected && document.contains(state.selected) ? state.selected : null;
  if (!card) return;
  const key = event.key;
  if (key === "j" || key === "ArrowDown") step(card, 1);
  else if (key === "k" || key === "ArrowUp") step(card, -1);
  else if (key === "h" || key === "ArrowLeft") otherList(card, -1);
  else if (key === "l" || key === "ArrowRight") otherList(card, 1);
  else if (key === "s") step(card, 1);
  else if (/^[0-9]$/.test(key) && Number(key) <= state.info.max_grade) {
    const queryId = card.dataset.query || state.query.id;
    sendLabel(queryId, card.dataset.doc, Number(key))
      .then(() => (card.dataset.group !== undefined ? route() : refreshQuery(card.dataset.doc, card.dataset.list)))
      .catch((error) => say(error.message, "error"));
  } else return;
  event.preventDefault();
});

// ------------------------------------------------------------------ live search

async function searchView(text) {
  const result = await api(`/api/search?q=${encodeURIComponent(text)}&k=50&top_n=10`);
  const terms = queryTerms(text);
  return el("section", {}, el("h1", { dir: "auto" }, text),
    el("p", { class: "muted" }, `${result.ranking}; ${(result.seconds * 1000).toFixed(0)} ms.`),
    el("ol", { class: "hits" }, result.hits.map((h) => el("li", { class: "doc" },
      el("div", { class: "scores" }, `${h.id} · first stage ${fmt(h.first_stage)} · reranker ${fmt(h.reranker)}` +
        (h.score !== undefined ? ` · served ${fmt(h.score)}` : "") + ` · p(relevant) ${fmt(h.probability, 3)}`),
      h.title ? el("h3", { dir: "auto" }, highlighted(h.title, terms)) : null,
      el("p", { class: "passage", dir: "auto" }, highlighted(h.text, terms))))));
}

// ------------------------------------------------------------------ training data

async function trainingView() {
  const data = await api("/api/training");
  const rows = data.groups.filter((g) => !state.trainingFlaggedOnly || g.flagged > 0);
  return el("section", {}, el("h1", {}, "Training data"),
    el("p", { class: "muted" }, `${data.path}: ${data.groups.length} groups. A negative is flagged as a likely false ` +
      "negative where a scorer (first stage, teacher; the reranker when a group is opened) puts it at or above the " +
      "positive."),
    el("label", {}, el("input", { type: "checkbox", id: "flagged-only", checked: state.trainingFlaggedOnly,
      onchange: (e) => { state.trainingFlaggedOnly = e.target.checked; route(); } }), " flagged groups only"),
    el("table", { class: "queries" }, el("thead", {}, el("tr", {}, ["#", "query", "positive", "negatives", "flagged",
      "scores"].map((t) => el("th", {}, t)))),
      el("tbody", {}, rows.slice(0, 1000).map((g) => el("tr", { class: g.flagged ? "loss" : "",
        onclick: () => { location.hash = "#/training/" + g.index; } },
        el("td", { class: "num" }, g.index), el("td", { dir: "auto" }, g.query), el("td", {}, g.positive_id || "–"),
        el("td", { class: "num" }, g.negatives), el("td", { class: "num" }, g.flagged),
        el("td", {}, g.scorers.join(", ") || "–"))))));
}

async function groupView(index) {
  const g = await api("/api/training/group?index=" + index);
  const terms = queryTerms(g.query);
  const flagged = new Set(g.flagged);
  const cards = g.documents.map((d, i) => el("article", {
      class: "doc" + (d.positive ? " is-relevant" : "") + (flagged.has(i - 1) ? " flagged" : ""), tabindex: "0",
      "data-doc": d.id || "", "data-query": g.query_id, "data-group": g.index, "data-list": "group",
      onclick: (e) => select(e.currentTarget) },
    el("div", { class: "doc-head" },
      el("span", { class: "rank" }, d.positive ? "positive" : `negative ${i}`),
      flagged.has(i - 1) ? el("span", { class: "badge flag" }, "likely false negative") : null,
      labelBadge(d.label), el("span", { class: "doc-id", dir: "auto" }, d.id || "(no id)")),
    el("div", { class: "scores" }, Object.entries(d.scores).map(([k, v]) => `${k} ${fmt(v)}`).join(" · ")),
    el("p", { class: "passage", dir: "auto" }, highlighted(d.text, terms)),
    d.id && d.known && g.known_query ? labelButtons(g.query_id, d.id, () => route()) : null));
  const section = el("section", { class: "group" }, el("a", { href: "#/training" }, "← all groups"),
    el("h1", { dir: "auto" }, g.query),
    el("p", { class: "muted" }, `group ${g.index} · query ${g.query_id} · ${g.flagged.length} flagged`),
    el("div", { class: "list", "data-list": "group" }, cards));
  section.afterMount = () => {
    const first = document.querySelector(".doc.flagged") || document.querySelector(".doc");
    if (first) select(first);
  };
  return section;
}

// ------------------------------------------------------------------ suggestions

async function suggestionsView() {
  const s = await api("/api/suggestions");
  return el("section", {}, el("h1", {}, "Label next"),
    el("h2", {}, "Queries where the reranker and the first stage disagree most"),
    el("table", { class: "queries", id: "suggested-queries" }, el("thead", {}, el("tr", {},
      ["query", "text", "top-10 disagreement", "unjudged@10", "Δ reranked", "labels"].map((t) => el("th", {}, t)))),
    el("tbody", {}, s.queries.map((r) => el("tr", { onclick: () => { location.hash = "#/query/" +
      encodeURIComponent(r.id); } }, el("td", {}, r.id), el("td", { dir: "auto" }, r.text),
      el("td", { class: "num" }, fmt(r.disagreement, 2)), el("td", { class: "num" }, r.unjudged),
      el("td", { class: "num" }, signed(r.reranked_change)), el("td", { class: "num" }, r.labels))))),
    el("h2", {}, "Likely false negatives in the training data, not yet labelled"),
    s.false_negatives.length ? el("ul", {}, s.false_negatives.map((f) => el("li", {},
      el("a", { href: "#/training/" + f.group }, `group ${f.group}`), ` · query ${f.query_id}: `,
      el("span", { dir: "auto" }, f.query), ` · document ${f.doc_id}`)))
      : el("p", { class: "muted" }, "None (or no training file loaded: --train_file)."));
}

// ------------------------------------------------------------------ charts

function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  return new Promise((resolve, reject) => {
    const script = el("script", { src: "/static/plotly.min.js" });
    script.addEventListener("load", () => resolve(window.Plotly));
    script.addEventListener("error", () => reject(new Error("plotly.min.js did not load (pip install plotly)")));
    document.head.append(script);
  });
}

async function chartsView() {
  const [data, Plotly] = await Promise.all([api("/api/charts"), loadPlotly()]);
  const charts = [];
  const layout = (title, x, y) => ({ title: { text: title }, xaxis: { title: { text: x } },
    yaxis: { title: { text: y } }, margin: { t: 40, r: 10 }, height: 320, legend: { orientation: "h" } });
  const t = data.training;
  if (t && t.steps.length) {
    const traces = [{ x: t.steps, y: t.ndcg, name: "reranker (dev)", mode: "lines+markers" }];
    if (t.first_stage !== null) traces.push({ x: [0, t.steps[t.steps.length - 1]], y: [t.first_stage, t.first_stage],
      name: "first stage (dev)", mode: "lines", line: { dash: "dash" } });
    charts.push(["chart-training", traces, layout("Dev nDCG@10 by update", "update", "nDCG@10")]);
  }
  const r = data.report;
  if (r && r.scores_by_label) {
    charts.push(["chart-scores", Object.entries(r.scores_by_label).map(([name, xs]) => ({ x: xs, name,
      type: "histogram", opacity: 0.6, histnorm: "probability density" })),
      { ...layout("Reranker scores by label (reranked candidates)", "score", "density"), barmode: "overlay" }]);
    charts.push(["chart-calibration", [
      { x: r.calibration.map((b) => b.predicted), y: r.calibration.map((b) => b.observed), name: r.calibration_source,
        mode: "lines+markers", text: r.calibration.map((b) => `${b.count} candidates`) },
      { x: [0, 1], y: [0, 1], name: "perfect", mode: "lines", line: { dash: "dot" } }],
      layout("Calibration", "predicted probability", "share relevant")]);
    charts.push(["chart-thresholds", ["precision", "recall"].map((k) => ({ x: r.thresholds.map((p) => p.threshold),
      y: r.thresholds.map((p) => p[k]), name: k, mode: "lines+markers" })),
      layout("Precision and recall by threshold", "min probability of relevance", "")]);
  }
  if (r && Object.keys(r.depth_curve).length) {
    charts.push(["chart-depth", Object.entries(r.depth_curve).map(([name, curve]) => ({
      x: Object.keys(curve).map(Number), y: Object.values(curve), name, mode: "lines+markers" })),
      layout("nDCG@10 by reranking depth", "depth k", "nDCG@10")]);
  }
  if (r && Object.keys(r.budget).length) {
    charts.push(["chart-budget", Object.entries(r.budget).map(([name, byN]) => ({
      x: Object.keys(byN).map(Number), y: Object.values(byN).map((v) => v.tokens), name,
      text: Object.values(byN).map((v) => `hit rate ${fmt(v.hit_rate, 3)}`), mode: "lines+markers" })),
      layout(`Tokens sent to the LLM by top-n${r.budget_tokenizer ? " (" + r.budget_tokenizer + ")" : ""}`, "top-n",
        "tokens")]);
  }
  const section = el("section", { class: "charts" }, el("h1", {}, "Charts"),
    charts.length ? charts.map(([id]) => el("div", { class: "chart", id }))
      : el("p", { class: "muted" }, "Nothing to chart: give --model (training) or --report (eval)."));
  section.afterMount = () => {
    for (const [id, traces, chartLayout] of charts) Plotly.newPlot(id, traces, chartLayout,
      { displaylogo: false, responsive: true });
    say(`${charts.length} charts`);
  };
  return section;
}

// ------------------------------------------------------------------ start

function start() {
  const login = document.getElementById("login-form");
  if (login) {
    login.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api("/login", { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ key: document.getElementById("login-key").value }) });
        location.href = "/";
      } catch (error) {
        document.getElementById("login-error").textContent = error.message;
      }
    });
    return;
  }
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = document.getElementById("search-box").value.trim();
    if (text) location.hash = "#/search/" + encodeURIComponent(text);
  });
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", start);
