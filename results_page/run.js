// The page of one test run: numbers, figures, settings, and the gallery of its images' searches.

const images = pageData.images;
const imagesById = new Map(images.map((image) => [image.id, image]));
const defaults = {filter: "all", sort: "worst", q: "", image: ""};
const state = readState(defaults);
let shown = [];

const FILTERS = {
  all: () => true,
  found: (image) => image.found > 0,
  missed: (image) => image.missed > 0,
  "false-positives": (image) => image.false_positives > 0,
};

// share of an image's objects found: an image without objects to find (all difficult) misses nothing
const foundShare = (image) => (image.objects_counted ? image.found / image.objects_counted : 1);
const orNone = (value, none) => (value === null || value === undefined ? none : value);
const SORTS = {
  worst: (a, b) => foundShare(a) - foundShare(b) || orNone(a.best_iou, -1) - orNone(b.best_iou, -1) ||
    b.false_positives - a.false_positives || byId(a, b),
  score: (a, b) => orNone(b.top_score, -Infinity) - orNone(a.top_score, -Infinity) || byId(a, b),
  id: byId,
};

const STATUS = {tp: "found an object", fp: "false positive: no object",
                repeat: "false positive: an object found before",
                ignored: "on a difficult object: neither found nor false"};
const STATUS_SHORT = {tp: "found", fp: "FP", repeat: "FP, repeat", ignored: "ignored"};

function showMetrics() {
  const metrics = pageData.metrics;
  const cards = [
    ["AP", number(metrics.ap)], ["AP-07", number(metrics.ap_voc07)], ["max recall", number(metrics.max_recall)],
    ["objects found", `${metrics.found_objects} / ${orNone(metrics.num_objects, "?")}`],
    ["regions per found object", number(metrics.mean_regions_per_found_object, 1)],
    ["images", orNone(metrics.num_images, images.length)],
  ];
  document.getElementById("metrics").append(...cards.map(([name, value]) => el("div", {class: "metric"},
    el("span", {class: "value", text: String(value)}), el("span", {class: "name", text: name}))));
}

function objectsText(image) {
  if (image.objects_counted === null) return `${image.found} found`;
  return `${image.found}/${image.objects_counted} found`;
}

function card(image) {
  const kind = image.missed > 0 ? (image.found > 0 ? "partly" : "missed") : "complete";
  const figure = image.drawing ? el("img", {src: image.drawing, loading: "lazy", alt: `search of ${image.id}`})
    : sketch(image, image.detections.slice(0, 3));
  const scores = image.detections.map((detection) => el("span", {class: `score ${detection.status}`,
    title: STATUS[detection.status], text: number(detection.score, 2)}));
  return el("article", {class: `card ${kind}`, tabindex: "0", dataset: {id: image.id},
                        onclick: () => openImage(image.id),
                        onkeydown: (event) => { if (event.key === "Enter") openImage(image.id); }},
    el("div", {class: "thumb"}, figure),
    el("div", {class: "facts"},
      el("div", {class: "line"}, el("strong", {text: image.id}),
        el("span", {class: `badge ${kind}`, text: objectsText(image)}),
        image.missed > 0 ? el("span", {class: "badge missed", text: `${image.missed} missed`}) : null,
        image.false_positives > 0 ? el("span", {class: "badge fp", title: "triggers that found no object",
                                                 text: `${image.false_positives} FP`}) : null),
      el("div", {class: "line"}, `best IoU ${number(image.best_iou, 2)} · `,
        image.first_trigger ? `first trigger: region ${image.first_trigger}` : "no trigger",
        ` of ${image.regions}`),
      el("div", {class: "line scores"}, "scores ", scores)));
}

function update() {
  const query = state.q.trim().toLowerCase();
  const filter = FILTERS[state.filter] || FILTERS.all;
  shown = images.filter((image) => filter(image) && (!query || image.id.toLowerCase().includes(query)));
  shown.sort(SORTS[state.sort] || SORTS.worst);
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.setAttribute("aria-pressed", String(button.dataset.filter === state.filter));
  }
  document.getElementById("sort").value = state.sort;
  document.getElementById("search").value = state.q;
  document.getElementById("count").textContent = `${shown.length} of ${images.length} images`;
  gallery.show(shown);
  writeState(state, defaults);
}

// --- one image: its animated search, its objects and its steps with their Q-values ----------------------------

function objectsTable(image) {
  if (!pageData.objects_known) return el("p", {class: "note", text: "This results.json does not hold the objects."});
  if (!image.objects.length) return el("p", {class: "note", text: "No object of the class in this image."});
  return el("table", {class: "steps"},
    el("thead", {}, el("tr", {}, ["object", "box [x0, y0, x1, y1)", "", "best IoU"].map((text) => el("th", {text})))),
    el("tbody", {}, image.objects.map((object, index) => el("tr", {},
      el("td", {text: String(index + 1)}), el("td", {text: object.box.map((value) => value.toFixed(0)).join(", ")}),
      el("td", {class: object.difficult ? "" : object.found ? "good" : "bad",
                text: object.difficult ? "difficult" : object.found ? "found" : "missed"}),
      el("td", {text: number(object.best_iou, 2)})))));
}

function stepsTable(image) {
  const steps = allSteps()[image.id] || [];
  const withQ = steps.some((step) => step.q);
  const head = [["region", "its number in the drawings"], ["search, step", "the step in its search"], ["action", ""],
                ...(withQ ? pageData.actions.map((name, action) => [`Q ${pageData.action_short[action]}`,
                                                                    `Q-value of ${name}`]) : []),
                ["score", "the detection's score"], ["detection", "by the VOC rule"],
                ["IoU", "of the reported box with the nearest object"]];
  return el("table", {class: "steps"},
    el("thead", {}, el("tr", {}, head.map(([text, title]) => el("th", {text, title: title || null})))),
    el("tbody", {}, steps.map((step, index) => el("tr", {class: step.trigger ? "trigger" : ""},
      el("td", {text: String(index + 1)}), el("td", {text: `${step.search}, ${step.step}`}),
      el("td", {text: pageData.actions[step.action] || String(step.action)}),
      withQ ? (step.q || []).map((value, action) => el("td", {class: action === step.action ? "chosen" : "",
                                                              text: number(value, 2)})) : [],
      el("td", {text: number(step.score, 3)}),
      el("td", {class: step.status === "tp" ? "good" : step.status === "ignored" ? "" : step.status ? "bad" : "",
                title: STATUS[step.status] || null, text: step.status ? STATUS_SHORT[step.status] : "–"}),
      el("td", {text: number(step.iou, 2)})))));
}

function openImage(id) {
  const image = imagesById.get(id);
  const dialog = document.getElementById("detail");
  if (!image) return;
  state.image = id;
  writeState(state, defaults);
  const position = shown.findIndex((other) => other.id === id);
  const go = (offset) => {
    const next = shown[position + offset];
    if (next) openImage(next.id);
  };
  const media = image.animation
    ? el("img", {src: image.animation, class: "animation", alt: `the search of ${image.id}, step by step`})
    : sketch(image, image.detections);
  dialog.replaceChildren(
    el("div", {class: "detail-head"},
      el("h2", {text: `${image.id}: ${objectsText(image)}` + (image.missed > 0 ? `, ${image.missed} missed` : "")}),
      el("button", {type: "button", text: "◀", title: "previous image (←)", disabled: position <= 0,
                    onclick: () => go(-1)}),
      el("button", {type: "button", text: "▶", title: "next image (→)", disabled: position < 0 ||
                    position >= shown.length - 1, onclick: () => go(1)}),
      el("button", {type: "button", text: "close", class: "close", onclick: () => dialog.close()})),
    el("div", {class: "detail-body"},
      el("div", {class: "media"}, media,
        image.drawing ? el("p", {}, el("a", {href: image.drawing, target: "_blank", text: "the whole drawing"})) : null,
        image.animation ? null : el("p", {class: "note", text: "Not drawn (bool_draw, draw_images): objects green " +
          "(found) or orange (missed), detections blue (found an object) or red (false positive)."})),
      el("div", {class: "tables"}, objectsTable(image), stepsTable(image))));
  dialog.onkeydown = (event) => {
    if (event.key === "ArrowLeft") go(-1);
    if (event.key === "ArrowRight") go(1);
  };
  if (!dialog.open) dialog.showModal();
}

showTitle();
showMetrics();
showFigures(pageData.figures);
showSettings(pageData.settings);
if (!pageData.objects_known) {
  const missed = document.querySelector('[data-filter="missed"]');
  missed.disabled = true;
  missed.title = "this results.json does not hold the objects (written before it did)";
}
const gallery = new Pager(document.getElementById("gallery"), document.getElementById("more"), card);
for (const button of document.querySelectorAll("[data-filter]")) {
  button.addEventListener("click", () => { state.filter = button.dataset.filter; update(); });
}
document.getElementById("sort").addEventListener("change", (event) => { state.sort = event.target.value; update(); });
document.getElementById("search").addEventListener("input", (event) => { state.q = event.target.value; update(); });
document.getElementById("detail").addEventListener("close", () => { state.image = ""; writeState(state, defaults); });
window.addEventListener("hashchange", () => {
  Object.assign(state, readState(defaults));
  update();
  if (state.image) openImage(state.image);
});
update();
if (state.image) openImage(state.image);
markReady();
