// The page that compares test runs: their table, their curves, and per image what each agent found.

const runs = pageData.runs;
const images = pageData.images;
const defaults = {filter: "all", sort: "id", q: ""};
const state = readState(defaults);

// a run found every object of the image it was to find (where the objects are not known: one at least)
const complete = (result) => result !== null &&
  (result.missed === null ? result.found > 0 : result.missed === 0);
const completeCount = (image) => image.runs.filter(complete).length;
const testedCount = (image) => image.runs.filter((result) => result !== null).length;
const foundTotal = (image) => image.runs.reduce((total, result) => total + (result ? result.found : 0), 0);

const FILTERS = {
  all: ["all images", () => true],
  "found-by-all": ["found by every agent", (image) => completeCount(image) === testedCount(image)],
  "missed-by-all": ["missed by every agent", (image) => completeCount(image) === 0],
  disagree: ["agents disagree", (image) => completeCount(image) > 0 && completeCount(image) < testedCount(image)],
};
runs.forEach((run, index) => {
  FILTERS[`missed-by-${index}`] = [`missed by ${run.label}`, (image) => image.runs[index] !== null &&
    !complete(image.runs[index])];
});

const SORTS = {
  id: byId,
  hardest: (a, b) => completeCount(a) - completeCount(b) || foundTotal(a) - foundTotal(b) || byId(a, b),
  disagreement: (a, b) => Math.min(completeCount(b), testedCount(b) - completeCount(b)) -
    Math.min(completeCount(a), testedCount(a) - completeCount(a)) || byId(a, b),
};

function showRuns() {
  const body = document.querySelector("#runs tbody");
  for (const run of runs) {
    body.append(el("tr", {},
      el("td", {}, run.page ? el("a", {href: run.page, text: run.label}) : run.label),
      el("td", {text: number(run.ap)}), el("td", {text: number(run.ap_voc07)}),
      el("td", {text: number(run.max_recall)}),
      el("td", {text: number(run.mean_regions_per_found_object, 1)}),
      el("td", {text: `${run.found_objects} / ${run.num_objects === null ? "?" : run.num_objects}`}),
      el("td", {text: run.num_images === null ? "–" : String(run.num_images)})));
  }
}

function cell(image, result, run) {
  if (result === null) return el("td", {class: "absent", text: "not tested"});
  const objects = result.objects_counted === null ? `${result.found} found`
    : `${result.found}/${result.objects_counted}`;
  const kind = complete(result) ? "complete" : result.found > 0 ? "partly" : "missed";
  const facts = el("div", {class: "cell-facts"}, el("span", {class: `badge ${kind}`, text: objects}),
    ` IoU ${number(result.best_iou, 2)}`,
    result.first_trigger ? ` · trigger @${result.first_trigger}` : " · no trigger",
    result.false_positives > 0 ? el("span", {class: "badge fp", text: `${result.false_positives} FP`}) : null);
  const picture = result.drawing ? el("img", {src: result.drawing, loading: "lazy", alt: `${run.label}: ${image.id}`})
    : sketch({...result, id: image.id});
  const content = [el("div", {class: "picture"}, picture), facts];
  return el("td", {class: complete(result) ? "good-cell" : "bad-cell"},
    run.page ? el("a", {href: `${run.page}#image=${encodeURIComponent(image.id)}`,
                        title: `${image.id} on ${run.label}'s page`}, content) : content);
}

function row(image) {
  const counted = image.runs.find((result) => result !== null && result.objects_counted !== null);
  return el("tr", {dataset: {id: image.id}}, el("th", {text: image.id}),
    el("td", {text: counted ? String(counted.objects_counted) : "?"}),
    image.runs.map((result, index) => cell(image, result, runs[index])));
}

function update() {
  const query = state.q.trim().toLowerCase();
  const filter = (FILTERS[state.filter] || FILTERS.all)[1];
  const shown = images.filter((image) => filter(image) && (!query || image.id.toLowerCase().includes(query)));
  shown.sort(SORTS[state.sort] || SORTS.id);
  document.getElementById("filter").value = state.filter;
  document.getElementById("sort").value = state.sort;
  document.getElementById("search").value = state.q;
  document.getElementById("count").textContent = `${shown.length} of ${images.length} images`;
  table.show(shown);
  writeState(state, defaults);
}

showTitle();
showRuns();
showFigures(pageData.figures);
document.querySelector("#images thead").append(el("tr", {}, el("th", {text: "image"}), el("th", {text: "objects"}),
  runs.map((run) => el("th", {text: run.label}))));
const filterSelect = document.getElementById("filter");
for (const [value, [text]] of Object.entries(FILTERS)) filterSelect.append(el("option", {value, text}));
const table = new Pager(document.querySelector("#images tbody"), document.getElementById("more"), row, 100);
filterSelect.addEventListener("change", (event) => { state.filter = event.target.value; update(); });
document.getElementById("sort").addEventListener("change", (event) => { state.sort = event.target.value; update(); });
document.getElementById("search").addEventListener("input", (event) => { state.q = event.target.value; update(); });
window.addEventListener("hashchange", () => { Object.assign(state, readState(defaults)); update(); });
update();
markReady();
