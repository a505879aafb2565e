// Serve the Tabler icon font from this server: BokehJS hard-codes cdn.jsdelivr.net for it,
// which an offline (or privacy-minded) install cannot reach. Runs after bokeh.min.js loads
// and before the document renders, so every icon view picks up the local URL.
(function () {
  "use strict";
  var base = new URL("tabler", document.currentScript.src).href;
  var model = window.Bokeh && window.Bokeh.Models && window.Bokeh.Models.get("TablerIcon");
  if (!model) {
    return;
  }
  var view = model.prototype.default_view;
  view._url = base;
  view._fonts.replace(
    '@font-face{font-family:"tabler-icons";font-style:normal;font-weight:400;' +
    'src:url("' + base + '/fonts/tabler-icons.woff2?v3.49.0") format("woff2")}'
  );
})();
