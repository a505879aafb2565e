// The sidebar's Conversations card as one browser component (see conversation_list.py): the
// New chat button, the search box, the list and a notice line under it.
//
// The server sends the list as one parameter, `items` ([id, title, detail] each), and which one
// is open, `current`. Each item has a menu (rename, export, delete); the browser asks, the
// server acts. The search box sets `query` (a moment after the last key); the server filters
// `items`. `notice` is shown as text (`notice_error`: as an error); `disabled` (history is
// off) disables the search. The page's address follows the open conversation (?c=ID): the
// server says when ("address" messages), Back and Forward ask the server to open what the
// address names.

const PARAM = "c"
const SEARCH_DELAY_MS = 150 // typing: one query a moment after the last key, not one per key
const SVG = "http://www.w3.org/2000/svg"

function el(tag, cls, text) {
  const node = document.createElement(tag)
  if (cls) node.className = cls
  if (text !== undefined) node.textContent = text
  return node
}

function button(label, cls, title) {
  const node = el("button", cls, label)
  node.type = "button"
  if (title) node.title = title
  return node
}

function addressOf(id) {
  const url = new URL(window.location.href)
  if (id) url.searchParams.set(PARAM, id)
  else url.searchParams.delete(PARAM)
  return url.toString()
}

function download(name, mime, text) {
  const url = URL.createObjectURL(new Blob([text], { type: mime }))
  const link = el("a")
  link.href = url
  link.download = name
  document.body.append(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}

// Tabler's "plus", as the Panel button had.
function plus() {
  const icon = document.createElementNS(SVG, "svg")
  icon.setAttribute("class", "mx-conv-plus")
  icon.setAttribute("viewBox", "0 0 24 24")
  icon.setAttribute("aria-hidden", "true")
  for (const d of ["M12 5l0 14", "M5 12l14 0"]) {
    const path = document.createElementNS(SVG, "path")
    path.setAttribute("d", d)
    icon.append(path)
  }
  return icon
}

// On a phone the sidebar is a drawer (assets/page.js): picking a conversation closes it.
function closeDrawer() {
  if (typeof window.mixchatCloseDrawer === "function") window.mixchatCloseDrawer()
}

class ConversationList {
  constructor(model, root) {
    this.model = model
    this.newChat = button(" New chat", "mx-conv-new", "New chat (Ctrl+Shift+O)")
    this.newChat.prepend(plus())
    this.newChat.setAttribute("aria-keyshortcuts", "Control+Shift+O Meta+Shift+O")
    this.newChat.addEventListener("click", () => this.send("new"))
    this.search = el("input", "mx-field mx-conv-search")
    this.search.type = "search"
    this.search.placeholder = "Search conversations…"
    this.search.setAttribute("aria-label", "Search conversations")
    this.search.autocomplete = "off"
    this.search.value = model.query || ""
    this.typing = null // the timer of a query not sent yet
    this.search.addEventListener("input", () => this.typed())
    this.root = el("nav", "mx-convs")
    this.root.setAttribute("aria-label", "Conversations")
    this.list = el("ul", "mx-conv-list")
    this.root.append(this.list)
    this.notice = el("div", "mixchat-hint mx-conv-notice")
    this.notice.setAttribute("role", "status")
    const tools = el("div", "mx-conv-tools")
    tools.append(this.newChat, this.search)
    root.replaceChildren(tools, this.root, this.notice)
    this.open = null // the item whose menu is open
    this.draw()
    this.showQuery()
    this.showNotice()
    this.showDisabled()
  }

  typed() {
    clearTimeout(this.typing)
    this.typing = setTimeout(() => {
      this.typing = null
      if (this.model.query !== this.search.value) this.model.query = this.search.value
    }, SEARCH_DELAY_MS)
  }

  showQuery() { // the server changed it; not while a query is being typed
    const query = this.model.query || ""
    if (this.typing === null && this.search.value !== query) this.search.value = query
  }

  showNotice() { // text, never markup
    const text = this.model.notice || ""
    const line = el("span", this.model.notice_error ? "mixchat-error" : "", text)
    this.notice.replaceChildren(...(text ? [line] : []))
    this.notice.hidden = !text
  }

  showDisabled() {
    this.search.disabled = Boolean(this.model.disabled)
  }

  send(type, fields = {}) {
    this.model.send_msg({ type, ...fields })
  }

  draw() {
    const current = this.model.current
    this.closeMenu()
    const rows = (this.model.items || []).map(([id, title, detail]) => this.item(id, title, detail, id === current))
    this.list.replaceChildren(...rows)
  }

  highlight() {
    const current = this.model.current
    for (const row of this.list.children) {
      const on = row.dataset.id === current
      row.classList.toggle("mx-conv-current", on)
      row.querySelector(".mx-conv-open").setAttribute("aria-current", on ? "page" : "false")
    }
  }

  item(id, title, detail, current) {
    const row = el("li", "mx-conv" + (current ? " mx-conv-current" : ""))
    row.dataset.id = id
    const open = button(title, "mx-conv-open", detail)
    open.setAttribute("aria-current", current ? "page" : "false")
    open.addEventListener("click", () => { closeDrawer(); this.send("open", { id }) })
    const more = button("⋯", "mx-conv-more", "Rename, export or delete")
    more.setAttribute("aria-label", `Menu of ${title}`)
    more.setAttribute("aria-haspopup", "menu")
    more.setAttribute("aria-expanded", "false")
    more.addEventListener("click", (event) => { event.stopPropagation(); this.toggleMenu(row, more, id, title) })
    row.append(open, more)
    return row
  }

  toggleMenu(row, more, id, title) {
    const wasOpen = this.open && this.open.row === row
    this.closeMenu()
    if (wasOpen) return
    const menu = el("div", "mx-conv-menu")
    menu.setAttribute("role", "menu")
    const entry = (label, action) => {
      const item = button(label, "mx-conv-action")
      item.setAttribute("role", "menuitem")
      item.addEventListener("click", (event) => { event.stopPropagation(); action(item) })
      menu.append(item)
      return item
    }
    entry("Rename", () => { this.closeMenu(); this.rename(row, id, title) })
    entry("Export Markdown", () => { this.closeMenu(); this.send("export", { id, format: "md" }) })
    entry("Export JSON", () => { this.closeMenu(); this.send("export", { id, format: "json" }) })
    entry("Delete", (item) => {
      if (item.dataset.armed) { this.closeMenu(); this.send("delete", { id }); return }
      item.dataset.armed = "1"
      item.textContent = "Click again to delete"
      item.classList.add("mx-conv-danger")
    })
    row.append(menu)
    more.setAttribute("aria-expanded", "true")
    this.open = { row, more, menu }
    menu.querySelector("button").focus()
    menu.addEventListener("keydown", (event) => { if (event.key === "Escape") { this.closeMenu(); more.focus() } })
  }

  closeMenu() {
    if (!this.open) return
    this.open.menu.remove()
    this.open.more.setAttribute("aria-expanded", "false")
    this.open = null
  }

  rename(row, id, title) {
    const open = row.querySelector(".mx-conv-open")
    const input = el("input", "mx-conv-title")
    input.value = title
    input.setAttribute("aria-label", "New title (Enter saves, Esc cancels)")
    let done = false
    const finish = (save) => {
      if (done) return
      done = true
      const text = input.value.trim()
      input.replaceWith(open)
      if (save && text && text !== title) {
        open.textContent = text
        this.send("rename", { id, title: text })
      }
    }
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); finish(true) }
      else if (event.key === "Escape") { event.preventDefault(); finish(false) }
    })
    input.addEventListener("blur", () => finish(true))
    open.replaceWith(input)
    input.focus()
    input.select()
  }

  handle([op, a, b, c]) {
    if (op === "address") { // [address, id or "", push]
      const target = addressOf(a)
      if (target !== window.location.href) window.history[b ? "pushState" : "replaceState"](null, "", target)
      if (b) closeDrawer() // the user moved to another chat (a new one, or an import)
    } else if (op === "file") { // [file, name, mime, text]
      download(a, b, c)
    }
  }
}

export function render({ model, el: root }) {
  const list = new ConversationList(model, root)
  model.on("items", () => list.draw())
  model.on("current", () => list.highlight())
  model.on("query", () => list.showQuery())
  model.on(["notice", "notice_error"], () => list.showNotice())
  model.on("disabled", () => list.showDisabled())
  model.on("msg:custom", (message) => list.handle(message))
  const outside = (event) => {
    if (list.open && !event.composedPath().includes(list.open.row)) list.closeMenu()
  }
  const key = (event) => { // Ctrl+Shift+O (Cmd+Shift+O on a Mac): a new chat, as ChatGPT
    if ((event.ctrlKey || event.metaKey) && event.shiftKey && event.code === "KeyO") {
      event.preventDefault()
      list.send("new")
    }
  }
  const moved = () => list.send("address", { id: new URL(window.location.href).searchParams.get(PARAM) || "" })
  document.addEventListener("click", outside)
  document.addEventListener("keydown", key)
  window.addEventListener("popstate", moved)
  list.send("ready") // an address sent before this view listened comes again
  model.on("remove", () => {
    clearTimeout(list.typing)
    document.removeEventListener("click", outside)
    document.removeEventListener("keydown", key)
    window.removeEventListener("popstate", moved)
  })
}
