// The sidebar's sections as one browser component (see sections.py).
//
// Each section is a native <details>: its <summary> is the title (focusable, Enter or Space
// toggles it). The browser tells the server which sections are open (`open`); the server adds
// a section's body (`bodies`, in the order of `loaded`) the first time it opens, which draws
// the sections anew: the open states come from `open`, and the focus stays where it was.

// Panel empties the component before drawing it anew, so the focused title is noted when its
// section is toggled (by model id: one page may hold several components).
const focusedTitle = new Map()

export function render({ model, el }) {
  const focused = focusedTitle.get(model.id)
  focusedTitle.delete(model.id)
  const bodies = model.get_child("bodies") || []
  const root = document.createElement("div")
  root.className = "mx-sections"
  model.titles.forEach((title, index) => {
    const section = document.createElement("details")
    section.className = "mx-section"
    section.dataset.index = String(index)
    section.open = Boolean(model.open[index])
    const head = document.createElement("summary")
    head.className = "mx-section-head"
    head.textContent = title
    const body = document.createElement("div")
    body.className = "mx-section-body"
    const at = model.loaded.indexOf(index)
    if (at >= 0 && bodies[at]) body.append(bodies[at])
    section.append(head, body)
    section.addEventListener("toggle", () => {
      if (Boolean(model.open[index]) === section.open) return // drawn so, not clicked
      if (el.getRootNode().activeElement === head) focusedTitle.set(model.id, index)
      model.open = model.open.map((state, i) => (i === index ? section.open : Boolean(state)))
    })
    root.append(section)
  })
  el.replaceChildren(root)
  if (focused !== undefined) root.querySelector(`[data-index="${focused}"] > summary`)?.focus()
}
