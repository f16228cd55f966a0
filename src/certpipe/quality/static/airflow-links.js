// Links to Airflow pages (a[data-airflow]) from inside the Airflow UI's plugin iframe. The UI sandboxes the iframe
// without allow-top-navigation, so a target="_top" link is blocked: instead, tell the UI's router (same origin) to
// go there. Outside the iframe the link is followed as usual.
document.addEventListener("click", function (event) {
  var link = event.target.closest ? event.target.closest("a[data-airflow]") : null;
  if (!link || window.top === window) return;
  try {
    var top = window.top, state = top.history.state || {};
    event.preventDefault();
    top.history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx: (state.idx || 0) + 1 },
      "", link.getAttribute("href"));
    top.dispatchEvent(new PopStateEvent("popstate", { state: top.history.state }));
  } catch (e) {
    window.location.href = link.href;
  }
});
