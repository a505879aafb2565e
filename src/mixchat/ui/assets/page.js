// The page around the chat: its colour scheme, the sidebar as a drawer on a phone, focus.
//
// Scheme: the system's (prefers-color-scheme) unless the user chose one with the header's
// toggle, which is remembered (localStorage). It sets <html data-mx-scheme> (read by
// scheme.css through color-scheme, which every shadow root inherits) and data-bs-theme (read
// by Bootstrap's own page styles). Loaded in <head>, so the first paint has the right colours.
(() => {
  const KEY = "mixchat-scheme"
  const root = document.documentElement
  const system = window.matchMedia("(prefers-color-scheme: dark)")
  const phone = window.matchMedia("(max-width: 700px)")

  const stored = () => {
    try {
      const value = window.localStorage.getItem(KEY)
      return value === "light" || value === "dark" ? value : null
    } catch { return null }
  }
  const fromAddress = () => (new URL(window.location.href).searchParams.get("theme") === "dark" ? "dark" : null)
  const chosen = () => stored() || fromAddress()
  const effective = () => chosen() || (system.matches ? "dark" : "light")

  function apply() {
    const choice = chosen()
    if (choice) root.dataset.mxScheme = choice
    else delete root.dataset.mxScheme
    root.dataset.bsTheme = effective()
  }

  function toggle() {
    const next = effective() === "dark" ? "light" : "dark"
    try { window.localStorage.setItem(KEY, next) } catch { /* private mode: this page only */ }
    root.dataset.mxScheme = next
    root.dataset.bsTheme = next
  }

  // On a phone the sidebar is a drawer over the chat: closed at first, closed again when a
  // conversation is picked (conversation_list.js calls mixchatCloseDrawer) or the chat tapped.
  function sidebar() { return document.getElementById("sidebar") }
  function closeDrawer() {
    const drawer = sidebar()
    if (phone.matches && drawer && drawer.classList.contains("show")) {
      const button = document.getElementById("sidebar-toggle")
      if (button) button.click()
    }
  }
  window.mixchatCloseDrawer = closeDrawer

  // Focus the message box once the page is drawn (not on a phone: its keyboard would cover
  // the page). The box lives in the transcript's shadow root.
  function find(node, selector) {
    const found = node.querySelector(selector)
    if (found) return found
    for (const child of node.querySelectorAll("*")) {
      if (child.shadowRoot) {
        const inner = find(child.shadowRoot, selector)
        if (inner) return inner
      }
    }
    return null
  }
  function focusBox(tries) {
    const box = find(document, "textarea.mx-box")
    if (box) { if (!document.activeElement || document.activeElement === document.body) box.focus({ preventScroll: true }) }
    else if (tries > 0) setTimeout(() => focusBox(tries - 1), 200)
  }

  // A lost connection: a banner over the page (Panel's notification area would cost every
  // new page a ReactiveHTML model and its scripts for this one message).
  function watchConnection(tries) {
    const doc = window.Bokeh && window.Bokeh.documents && window.Bokeh.documents[0]
    if (!doc) { if (tries > 0) setTimeout(() => watchConnection(tries - 1), 200); return }
    doc.on_event("connection_lost", () => {
      if (document.querySelector(".mixchat-disconnected")) return
      const banner = document.createElement("div")
      banner.className = "mixchat-disconnected"
      banner.setAttribute("role", "alert")
      banner.textContent = "Connection to the mixchat server lost: reload the page."
      document.body.appendChild(banner)
    })
  }

  apply()
  system.addEventListener("change", apply)
  window.addEventListener("storage", (event) => { if (event.key === KEY) apply() })
  // A switch's label flips it, as a checkbox's label does (Bokeh's switch reacts only to
  // its own track and knob).
  function switchOf(node) {
    if (!node.classList || !node.classList.contains("bk-label")) return null
    const root = node.getRootNode()
    const host = root && root.host
    return host && host.getAttribute && host.getAttribute("role") === "switch" ? root.querySelector(".bk-body") : null
  }

  document.addEventListener("click", (event) => {
    const track = event.composedPath().map(switchOf).find(Boolean)
    if (track) { track.click(); return }
    for (const node of event.composedPath()) {
      if (node.dataset && node.dataset.mxSchemeToggle !== undefined) { toggle(); return }
      if (node.id === "main") { closeDrawer(); return }
      if (node.id === "sidebar") return
    }
  })
  document.addEventListener("DOMContentLoaded", () => {
    const drawer = sidebar()
    if (phone.matches && drawer) {
      drawer.classList.remove("show")
      const button = document.getElementById("sidebar-toggle")
      if (button) button.setAttribute("aria-expanded", "false")
    }
    if (!phone.matches) focusBox(75)
    watchConnection(300)
  })
})()
