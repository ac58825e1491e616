"use strict";
// What the pages share: their data (inlined JSON: browsers refuse to fetch local files), building elements,
// numbers, the page's state in its address (#filter=missed&sort=score&image=000297: a link or a reload keeps it),
// long lists shown a page at a time, and the sketch of an image's objects and detections where it was not drawn.

const pageData = JSON.parse(document.getElementById("page-data").textContent);
let stepsData = null;

function allSteps() {   // the searches step by step: parsed when an image is first opened, not at load
  if (stepsData === null) stepsData = JSON.parse(document.getElementById("steps-data").textContent);
  return stepsData;
}

function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

function number(value, digits = 3) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

const collator = new Intl.Collator(undefined, {numeric: true});
const byId = (a, b) => collator.compare(a.id, b.id);

function readState(defaults) {
  const state = {...defaults};
  for (const [key, value] of new URLSearchParams(location.hash.slice(1))) {
    if (key in defaults) state[key] = value;
  }
  return state;
}

function writeState(state, defaults) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state)) {
    if (value !== defaults[key]) params.set(key, value);
  }
  const hash = params.toString();
  try {
    history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
  } catch (error) {     // some browsers refuse history changes to file:// addresses: the state is then not kept
  }
}

function showTitle() {
  document.getElementById("title").textContent = pageData.title;
}

function showFigures(figures) {     // each has its title: a click opens it whole
  const section = document.getElementById("figures");
  for (const figure of figures) {
    section.append(el("figure", {}, el("a", {href: figure.src, target: "_blank", title: "open the figure"},
                                       el("img", {src: figure.src, alt: figure.caption}))));
  }
}

function showSettings(settings) {
  const body = document.querySelector("#settings tbody");
  for (const [name, value] of settings) {
    body.append(el("tr", {}, el("th", {text: name}), el("td", {text: value === null ? "–" : String(value)})));
  }
}

// A long list, a page at a time: the next page comes with the button, or when the button scrolls into view.
class Pager {
  constructor(container, button, render, size = 60) {
    Object.assign(this, {container, button, render, size, items: [], shown: 0});
    button.addEventListener("click", () => this.more());
    if ("IntersectionObserver" in window) {
      this.observer = new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting) && !this.button.hidden) this.more();
      }, {rootMargin: "600px"});
      this.observer.observe(button);
    }
  }

  show(items) {
    this.items = items;
    this.shown = 0;
    this.container.replaceChildren();
    this.more();
  }

  more() {
    const next = this.items.slice(this.shown, this.shown + this.size);
    const fragment = document.createDocumentFragment();
    for (const item of next) fragment.append(this.render(item));
    this.container.append(fragment);
    this.shown += next.length;
    const left = this.items.length - this.shown;
    this.button.hidden = left <= 0;
    this.button.textContent = `show more (${left} left)`;
    if (this.observer && left > 0) {    // still in view after this page: observing again reports it, and the next comes
      this.observer.unobserve(this.button);
      this.observer.observe(this.button);
    }
  }
}

// An image's objects (green: found, orange: missed, grey: difficult) and its best detections (blue: found an
// object, red dashed: a false positive), where no drawing of its search was made.
const SVG = "http://www.w3.org/2000/svg";

function svgElement(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
}

function sketch(image, detections = image.detections) {
  if (!image.size) return el("div", {class: "sketch empty", text: "no regions"});
  const [width, height] = image.size;
  const svg = svgElement("svg", {viewBox: `0 0 ${width} ${height}`, class: "sketch", role: "img",
                                 "aria-label": `objects and detections of ${image.id}`});
  const line = Math.max(width, height) / 80;
  const box = ([x0, y0, x1, y1], attributes) => svgElement("rect", {x: x0, y: y0, width: Math.max(0, x1 - x0),
                                                                   height: Math.max(0, y1 - y0), ...attributes});
  svg.append(box([0, 0, width, height], {class: "canvas"}));
  for (const object of image.objects) {
    const kind = object.difficult ? "difficult" : object.found ? "found" : "missed";
    svg.append(box(object.box, {class: `object ${kind}`, "stroke-width": line}));
  }
  for (const detection of detections) {
    svg.append(box(detection.box, {class: `detection ${detection.status}`, "stroke-width": line}));
  }
  return svg;
}

function markReady() {      // the tests wait for this, and read how long the page took
  window.pageReadyMs = performance.now();
  document.body.dataset.ready = "true";
}
