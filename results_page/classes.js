// The page of a test of several classes: one row per class, each linked to its own run page, and the means.

function showClasses() {
  const body = document.querySelector("#classes tbody");
  for (const row of pageData.classes) {
    body.append(el("tr", {},
      el("td", {}, row.page ? el("a", {href: row.page, text: row.class_object}) : row.class_object),
      el("td", {text: number(row.ap)}), el("td", {text: number(row.ap_voc07)}),
      el("td", {text: number(row.max_recall)}),
      el("td", {text: number(row.mean_regions_per_found_object, 1)}),
      el("td", {text: String(row.num_images)}), el("td", {text: String(row.num_objects)})));
  }
  const means = pageData.means;
  document.querySelector("#classes tfoot").append(el("tr", {}, el("th", {text: "mean"}),
    el("td", {text: number(means.map)}), el("td", {text: number(means.mean_ap_voc07)}),
    el("td", {text: number(means.mean_max_recall)})));
  if (pageData.absent.length) {
    document.getElementById("absent").textContent =
      `Absent from the test set, not in the means: ${pageData.absent.join(", ")}.`;
  }
}

showTitle();
showClasses();
showSettings(pageData.settings);
markReady();
