// The Model section as one browser component (see model_picker.py): the model and preset
// selects, each with a line under it. The server sends lists and lines; the browser sends the
// choices (`model`, `preset`).

function el(tag, cls, text) {
  const node = document.createElement(tag)
  if (cls) node.className = cls
  if (text !== undefined) node.textContent = text
  return node
}

function field(id, label, help) {
  const head = el("label", "mx-pick-label", label)
  head.htmlFor = id
  if (help) {
    const mark = el("span", "mx-pick-help", "?")
    mark.title = help
    mark.tabIndex = 0
    mark.setAttribute("role", "img")
    mark.setAttribute("aria-label", help)
    head.append(" ", mark)
  }
  const select = el("select", "mx-field mx-pick")
  select.id = id
  return [head, select]
}

function fill(select, items, value) {
  select.replaceChildren(...items.map(([v, label]) => {
    const option = el("option", "", label)
    option.value = v
    return option
  }))
  select.value = value
}

export function render({ model, el: root }) {
  const [modelHead, models] = field("mx-pick-model", "Model")
  const about = el("p", "mixchat-hint mx-pick-about")
  const [presetHead, presets] = field("mx-pick-preset", "Preset", model.preset_help)
  const presetAbout = el("p", "mixchat-hint mx-pick-about")
  presetAbout.setAttribute("role", "status")
  const draw = {
    models: () => fill(models, model.models, model.model),
    model: () => { models.value = model.model },
    about: () => { about.textContent = model.about },
    presets: () => fill(presets, model.presets, model.preset),
    preset: () => { presets.value = model.preset },
    preset_about: () => { presetAbout.textContent = model.preset_about },
  }
  for (const [name, redraw] of Object.entries(draw)) {
    redraw()
    model.on(name, redraw)
  }
  models.addEventListener("change", () => { model.model = models.value })
  presets.addEventListener("change", () => { model.preset = presets.value })
  const box = el("div", "mx-picker")
  box.append(modelHead, models, about, presetHead, presets, presetAbout)
  root.replaceChildren(box)
}
