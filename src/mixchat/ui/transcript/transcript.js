// The whole chat transcript in the browser: messages, the streamed reply, agent steps, actions
// and the input box. The server sends facts ("message 12 grew by this text"); this module owns
// the DOM. Bundled with its libraries by js/build.mjs into dist/transcript.bundle.js.
//
// Safety: markdown-it renders with raw HTML off and its link validation (no javascript:,
// vbscript:, file: or non-image data: links); DOMPurify then cleans the HTML as a second
// layer before it reaches the page. Every other string goes in as textContent.

import MarkdownIt from "markdown-it"
import markdownItKatex from "@vscode/markdown-it-katex"
import DOMPurify from "dompurify"
import hljs from "highlight.js/lib/common"

const FOLLOW_SLACK = 48 // px from the bottom that still counts as "at the bottom"

const md = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: true,
  highlight(code, lang) {
    const language = lang && hljs.getLanguage(lang) ? lang : null
    try {
      const result = language
        ? hljs.highlight(code, { language, ignoreIllegals: true })
        : hljs.highlightAuto(code)
      return `<pre class="hljs"><code class="hljs language-${result.language || "text"}">${result.value}</code></pre>`
    } catch (_) {
      return "" // markdown-it escapes the code itself
    }
  },
})
md.use(markdownItKatex.default || markdownItKatex, { throwOnError: false, errorColor: "#b91c1c" })

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank")
    node.setAttribute("rel", "noopener noreferrer nofollow")
  }
})

/** Markdown to clean HTML (the only way model or user text becomes HTML). */
export function renderMarkdown(text) {
  return DOMPurify.sanitize(md.render(text || ""), {
    USE_PROFILES: { html: true, mathMl: true, svg: true },
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"],
  })
}

function el(tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined && text !== null) node.textContent = text
  return node
}

function megabytes(size) {
  return `${(size / 1024 / 1024).toFixed(1)} MB`
}

function button(label, className, title) {
  const node = el("button", `mx-btn ${className || ""}`.trim(), label)
  node.type = "button"
  if (title) node.title = title
  return node
}

async function copyText(text, node) {
  let ok = true
  try {
    await navigator.clipboard.writeText(text)
  } catch (_) {
    // the clipboard API needs a secure context: fall back on a hidden textarea
    const area = el("textarea")
    area.value = text
    area.style.position = "fixed"
    area.style.opacity = "0"
    document.body.appendChild(area)
    area.select()
    ok = document.execCommand("copy")
    area.remove()
  }
  if (node) {
    const label = node.textContent
    node.textContent = ok ? "Copied" : "Copy failed"
    setTimeout(() => { node.textContent = label }, 1500)
  }
}

class Transcript {
  constructor(model, root) {
    this.model = model
    this.messages = new Map() // id -> {data, node, parts}
    this.busy = false
    this.follow = true
    this.pending = new Set() // messages whose Markdown must be drawn at the next frame
    this.frame = 0
    this.scrollForced = false
    this.scrolledTo = 0 // where scrollNow last put the view

    this.root = el("div", "mx-transcript")
    this.log = el("div", "mx-log")
    this.log.setAttribute("role", "log")
    this.log.setAttribute("aria-live", "polite")
    this.log.setAttribute("aria-label", "Conversation")
    this.log.tabIndex = 0
    this.log.addEventListener("scroll", () => this.onScroll(), { passive: true })

    this.jump = button("Jump to the latest message ↓", "mx-jump")
    this.jump.hidden = true
    this.jump.addEventListener("click", () => { this.follow = true; this.scrollDown(true) })

    this.form = el("form", "mx-input")
    this.form.setAttribute("aria-label", "Send a message")
    this.box = el("textarea", "mx-box")
    this.box.rows = 1
    this.box.placeholder = model.placeholder
    this.box.setAttribute("aria-label", "Message")
    this.box.addEventListener("keydown", (event) => this.onKey(event))
    this.box.addEventListener("input", () => { this.grow(); this.hint("") })
    this.send = button("Send", "mx-send mx-primary")
    this.send.type = "submit"
    this.stop = button("Stop", "mx-stop", "Stop the reply (keeps what was written)")
    this.stop.hidden = true
    this.stop.addEventListener("click", () => this.model.send_msg({ type: "stop" }))
    this.status = el("div", "mx-hint")
    this.status.setAttribute("role", "status")
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.submit() })
    // documents: a button, drag and drop onto the box, or paste
    this.files = el("input", "mx-file")
    this.files.type = "file"
    this.files.multiple = true
    this.files.hidden = true
    this.files.setAttribute("aria-label", "Choose documents to attach")
    this.files.addEventListener("change", () => { this.attachFiles(this.files.files); this.files.value = "" })
    this.attach = button("Attach", "mx-attach", "Attach a document: text, Markdown, code, CSV, HTML or PDF (or drop or paste it on the box)")
    this.attach.setAttribute("aria-label", "Attach a document")
    this.attach.addEventListener("click", () => this.files.click())
    this.chipBar = el("div", "mx-chips")
    this.chipBar.hidden = true
    this.chipCount = 0
    this.form.addEventListener("dragover", (event) => {
      if ([...(event.dataTransfer?.types || [])].includes("Files")) { event.preventDefault(); this.form.classList.add("mx-drop") }
    })
    this.form.addEventListener("dragleave", () => this.form.classList.remove("mx-drop"))
    this.form.addEventListener("drop", (event) => {
      this.form.classList.remove("mx-drop")
      if (event.dataTransfer?.files?.length) { event.preventDefault(); this.attachFiles(event.dataTransfer.files) }
    })
    this.box.addEventListener("paste", (event) => {
      const files = event.clipboardData?.files
      if (files && files.length) { event.preventDefault(); this.attachFiles(files) }
    })
    const row = el("div", "mx-row")
    row.append(this.attach, this.box, this.send, this.stop)
    this.form.append(this.chipBar, row, this.status, this.files)

    this.root.append(this.log, this.jump, this.form)
    root.replaceChildren(this.root)
    this.load(model.messages || [])
  }

  // -- messages from the server
  // Each message is a short list, [op, ...args] (see component.py's Op for the names): lists
  // travel as plain JSON arrays, the cheapest shape on Bokeh's websocket.
  handle(msg) {
    const [op, a, c] = msg
    const b = op === "s" || op === "p" || op === "x" || op === "t" ? JSON.parse(c) : c
    switch (op) {
      case "a": this.append(JSON.parse(a)); break
      case "d": this.delta(a, b); break
      case "s": this.update(a, b); break
      case "p": this.step(a, b); break
      case "r": this.removeFrom(a); break
      case "l": this.load(JSON.parse(a)); break
      case "b": this.setBusy(a); break
      case "i": this.box.value = a; this.grow(); this.box.focus(); break
      case "h": this.hint(a); break
      case "x": this.showPrompt(a, b); break
      case "c": this.showChips(JSON.parse(a)); break
      case "t": this.showDocument(a, b); break
    }
  }

  load(messages) {
    this.messages.clear()
    this.log.replaceChildren()
    for (const m of messages) this.append(m, false)
    this.actionsOnLast()
    this.follow = true
    this.scrollDown(true)
  }

  append(data, scroll = true) {
    if (data.typed) data = { ...data, text: this.lastSent } // sent from this box: not echoed
    const entry = { data: { ...data, steps: [] }, parts: {} }
    entry.node = this.draw(entry)
    this.messages.set(data.id, entry)
    this.log.appendChild(entry.node)
    for (const step of data.steps || []) this.step(data.id, step)
    this.paint(entry)
    if (scroll) {
      this.actionsOnLast()
      if (data.role === "user") this.follow = true
      this.scrollDown()
    }
  }

  draw(entry) {
    const m = entry.data
    const node = el("article", `mx-msg mx-${m.role}`)
    node.dataset.id = m.id
    if (m.role === "notice") {
      node.classList.add("mixchat-notice")
      node.setAttribute("aria-label", "Notice from mixchat")
      entry.parts.body = el("div", "mx-body mx-md")
      node.append(entry.parts.body)
      return node
    }
    const who = el("div", "mx-who", m.name || (m.role === "user" ? "You" : "Assistant"))
    node.setAttribute("aria-label", m.role === "user" ? "Your message" : `Reply from ${who.textContent}`)
    const parts = entry.parts
    parts.body = el("div", `mx-body mx-md ${m.role === "user" ? "mixchat-user" : "mixchat-reply"}`)
    node.append(who)
    if (m.role === "assistant") {
      parts.notice = el("div", "mixchat-context-notice")
      parts.steps = el("div", "mx-steps")
      parts.status = el("div", "mixchat-status")
      parts.status.setAttribute("aria-live", "off")
      parts.stats = el("div", "mixchat-stats")
      node.append(parts.notice, parts.steps, parts.status, parts.body, parts.stats)
    } else {
      if (m.docs && m.docs.length) {
        parts.docs = el("div", "mx-docs")
        m.docs.forEach((name, index) => {
          const chip = button(name, "mx-doc-chip", `Show the text of ${name}`)
          chip.setAttribute("aria-expanded", "false")
          chip.addEventListener("click", () => this.toggleDocument(entry, index, chip))
          parts.docs.append(chip)
        })
        node.append(parts.docs)
      }
      node.append(parts.body)
    }
    parts.actions = el("div", "mx-actions")
    node.append(parts.actions)
    return node
  }

  /** Draw what is not streamed text: status, notice, footer, actions. */
  paint(entry) {
    const m = entry.data
    const p = entry.parts
    if (m.status === "streaming") {
      this.pending.add(entry) // streamed text is drawn once per frame, however many deltas
      this.schedule()
    } else {
      // A finished message is drawn now, with its footer: never a footer under an empty body.
      this.pending.delete(entry)
      this.drawBody(entry)
    }
    if (m.role === "notice") return
    entry.node.setAttribute("aria-busy", m.status === "streaming" ? "true" : "false")
    if (m.role !== "assistant") return
    p.notice.textContent = m.notice || ""
    p.notice.hidden = !m.notice
    p.status.textContent = m.status === "streaming" ? (m.progress || "") : ""
    p.status.hidden = !p.status.textContent
    p.stats.replaceChildren()
    p.stats.className = `mixchat-stats mx-ended-${m.status}`
    if (m.status !== "streaming") {
      if (m.error) p.stats.append(el("div", "mixchat-error", m.error))
      if (m.status === "stopped") p.stats.append(el("div", "mixchat-stopped", "Stopped: the reply is incomplete."))
      if (m.footer) p.stats.append(el("div", "mixchat-stats-line", m.footer))
    }
  }

  delta(id, text) {
    const entry = this.messages.get(id)
    if (!entry) return
    entry.data.text = (entry.data.text || "") + text
    if (entry.data.progress) { entry.data.progress = ""; this.paint(entry) }
    this.pending.add(entry)
    this.schedule()
  }

  update(id, changes) {
    const entry = this.messages.get(id)
    if (!entry) return
    Object.assign(entry.data, changes)
    this.paint(entry)
    if (changes.status && changes.status !== "streaming") this.actionsOnLast()
    this.scrollDown()
  }

  step(id, step) {
    const entry = this.messages.get(id)
    if (!entry || !entry.parts.steps) return
    const steps = entry.data.steps
    const index = steps.findIndex((s) => s.n === step.n)
    if (step.gone) {
      if (index >= 0) steps.splice(index, 1)
      entry.parts.steps.querySelector(`[data-step="${step.n}"]`)?.remove()
      return
    }
    const merged = index >= 0 ? Object.assign(steps[index], step) : step
    if (index < 0) steps.push(merged)
    let card = entry.parts.steps.querySelector(`[data-step="${step.n}"]`)
    if (!card) {
      card = el("details", "mx-step mixchat-step")
      card.dataset.step = step.n
      entry.parts.steps.append(card)
    }
    card.className = `mx-step mixchat-step mx-step-${merged.state || "running"}`
    card.open = merged.state === "running" && !merged.collapsed
    if (merged.collapsed) card.open = false
    const summary = el("summary", "step-title", merged.title || `Step ${merged.n}`)
    const body = el("div", "mx-step-body")
    const section = (label, text) => {
      if (!text) return
      body.append(el("div", "mx-step-label", label))
      const pre = el("pre", "mx-step-text")
      pre.textContent = text
      body.append(pre)
    }
    section("Input", merged.input)
    section("Output", merged.output)
    section("Problem", merged.error)
    section("Model output", merged.raw)
    card.replaceChildren(summary, body)
    this.scrollDown()
  }

  removeFrom(id) {
    let removing = false
    for (const [key, entry] of [...this.messages]) {
      if (key === id) removing = true
      if (removing) {
        entry.node.remove()
        this.messages.delete(key)
        this.pending.delete(entry)
      }
    }
    this.actionsOnLast()
  }

  setBusy(on) {
    this.busy = on
    this.stop.hidden = !on
    this.send.hidden = on
    if (on) this.hint("")
    else this.box.focus({ preventScroll: true })
    this.actionsOnLast()
  }

  hint(text) {
    this.status.textContent = text || ""
  }

  // -- drawing
  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush())
  }

  flush() {
    this.frame = 0
    for (const entry of this.pending) this.drawBody(entry)
    this.pending.clear()
    const force = this.scrollForced
    this.scrollForced = false
    this.scrollNow(force)
  }

  drawBody(entry) {
    const text = entry.data.text || ""
    entry.parts.body.innerHTML = renderMarkdown(text)
    entry.parts.body.hidden = !text && entry.data.role === "assistant"
    this.codeButtons(entry.parts.body)
  }

  codeButtons(body) {
    for (const pre of body.querySelectorAll("pre")) {
      const wrap = el("div", "mx-code")
      pre.replaceWith(wrap)
      const copy = button("Copy code", "mx-copy-code", "Copy this code block")
      copy.addEventListener("click", () => copyText(pre.querySelector("code")?.textContent ?? pre.textContent, copy))
      wrap.append(copy, pre)
    }
  }

  /** Copy on every message, edit on the user's, the versions' ‹ 2/3 ›, the prompt of a
   * reply; regenerate and undo on the last reply once it is done. */
  actionsOnLast() {
    const entries = [...this.messages.values()].filter((e) => e.data.role !== "notice")
    const last = entries[entries.length - 1]
    for (const entry of entries) {
      const bar = entry.parts.actions
      bar.replaceChildren()
      const m = entry.data
      if (m.status === "streaming") continue
      if (m.branch && m.branch[1] > 1) bar.append(this.branchNav(entry))
      if (m.text) {
        const copy = button("Copy", "mx-copy", m.role === "user" ? "Copy this message" : "Copy this reply as Markdown")
        copy.addEventListener("click", () => copyText(entry.data.text || "", copy))
        bar.append(copy)
      }
      if (m.role === "user" && !this.busy && !entry.editing) {
        const edit = button("Edit", "mx-edit", "Edit this message: sending it starts a new branch here, the old one is kept")
        edit.addEventListener("click", () => this.startEdit(entry))
        bar.append(edit)
      }
      if (m.role === "assistant" && m.inspect) {
        const label = entry.parts.inspector ? "Hide prompt" : "Inspect prompt"
        const inspect = button(label, "mx-inspect", "Show exactly what the model received for this reply")
        inspect.setAttribute("aria-expanded", entry.parts.inspector ? "true" : "false")
        inspect.addEventListener("click", () => this.togglePrompt(entry))
        bar.append(inspect)
      }
      if (entry === last && m.role === "assistant" && !this.busy) {
        const again = button("Regenerate", "mx-regenerate", "Answer the last message again")
        again.addEventListener("click", () => this.model.send_msg({ type: "regenerate" }))
        const undo = button("Undo", "mx-undo", "Remove the last exchange and put your message back in the box")
        undo.addEventListener("click", () => this.model.send_msg({ type: "undo" }))
        bar.append(again, undo)
      }
    }
  }

  /** ‹ 2/3 ›: the versions of a message (an edit, a regenerated reply); the rest of the
   * conversation follows the one picked. */
  branchNav(entry) {
    const [at, count] = entry.data.branch
    const nav = el("span", "mx-branch")
    nav.setAttribute("role", "group")
    nav.setAttribute("aria-label", `Version ${at} of ${count}`)
    const go = (step) => this.model.send_msg({ type: "branch", id: entry.data.id, step })
    const previous = button("‹", "mx-branch-prev", "Previous version")
    previous.setAttribute("aria-label", "Previous version")
    previous.disabled = at <= 1
    previous.addEventListener("click", () => go(-1))
    const next = button("›", "mx-branch-next", "Next version")
    next.setAttribute("aria-label", "Next version")
    next.disabled = at >= count
    next.addEventListener("click", () => go(1))
    nav.append(previous, el("span", "mx-branch-at", `${at}/${count}`), next)
    return nav
  }

  /** Edit a message of the user's in place; sending it makes a new branch from there. */
  startEdit(entry) {
    if (this.busy) {
      this.hint("Not now: a reply is still being written. Wait for it, or press Stop (Esc).")
      return
    }
    if (entry.editing) { entry.editing.box.focus(); return }
    const form = el("div", "mx-editing")
    const box = el("textarea", "mx-edit-box")
    box.value = entry.data.text || ""
    box.setAttribute("aria-label", "Edit your message")
    const save = button("Send edit", "mx-primary mx-edit-send", "Send the edited message: a new branch, the old one is kept")
    const cancel = button("Cancel", "mx-edit-cancel", "Keep the message as it was (Esc)")
    const note = el("div", "mx-hint", "Editing: Enter sends it as a new branch (the old one stays, ‹ › switches), Esc cancels.")
    const row = el("div", "mx-row")
    row.append(save, cancel)
    form.append(box, row, note)
    const done = () => {
      form.remove()
      entry.parts.body.hidden = false
      entry.editing = null
      entry.node.classList.remove("mx-is-editing")
      this.actionsOnLast()
    }
    const send = () => {
      const text = box.value
      if (!text.trim()) return
      if (this.busy) { note.textContent = "Not sent: a reply is still being written."; return }
      this.model.send_msg({ type: "edit", id: entry.data.id, text })
      done()
      this.follow = true
    }
    save.addEventListener("click", send)
    cancel.addEventListener("click", () => { done(); this.box.focus() })
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send() }
      else if (event.key === "Escape") { event.preventDefault(); done(); this.box.focus() }
    })
    entry.editing = { box }
    entry.node.classList.add("mx-is-editing")
    entry.parts.body.hidden = true
    entry.parts.body.after(form)
    this.actionsOnLast()
    box.style.height = `${Math.min(Math.max(box.scrollHeight, 60), 300)}px`
    box.focus()
    box.setSelectionRange(box.value.length, box.value.length)
  }

  togglePrompt(entry) {
    if (entry.parts.inspector) {
      entry.parts.inspector.remove()
      entry.parts.inspector = null
      this.actionsOnLast()
      return
    }
    this.model.send_msg({ type: "inspect", id: entry.data.id })
  }

  /** What the model received for a reply: all of it text, drawn with textContent. */
  showPrompt(id, view) {
    const entry = this.messages.get(id)
    if (!entry) return
    entry.parts.inspector?.remove()
    const box = el("section", "mx-inspector")
    box.setAttribute("aria-label", "What the model received")
    box.append(el("div", "mx-inspector-title", "What the model received"))
    const line = (className, text) => { if (text) box.append(el("div", className, text)) }
    line("mx-inspector-where", view.where)
    line("mx-inspector-count", view.count)
    if (view.equal === true) line("mx-inspector-mark mx-same", "✓ The token ids equal mistral-common's")
    if (view.equal === false) line("mx-inspector-mark mx-differ", "✗ The token ids differ from mistral-common's")
    line("mx-inspector-sampling", view.sampling)
    const section = (label, text, className) => {
      const part = el("details", `mx-inspector-part ${className}`)
      part.append(el("summary", "", label))
      const pre = el("pre", "mx-inspector-text")
      pre.textContent = text
      part.append(pre)
      box.append(part)
      return part
    }
    if (view.dropped) section(view.dropped_label, view.dropped, "mx-inspector-dropped")
    section(view.text_label, view.text, "mx-inspector-prompt").open = true
    if (view.ids) section(view.ids_label, view.ids, "mx-inspector-ids")
    entry.parts.inspector = box
    entry.parts.actions.before(box)
    this.actionsOnLast()
  }

  // -- documents
  attachFiles(files) {
    const limit = this.model.max_document_bytes
    for (const file of files) {
      if (file.size > limit) { // refused here, before a byte is read or sent
        this.hint(`Not attached: ${file.name} is ${megabytes(file.size)}; the limit for a document is ${megabytes(limit)}.`)
        continue
      }
      this.hint(`Reading ${file.name}…`)
      const reader = new FileReader()
      reader.onload = () => {
        const url = String(reader.result || "")
        this.model.send_msg({ type: "attach", name: file.name, data: url.slice(url.indexOf(",") + 1) })
      }
      reader.onerror = () => this.hint(`Could not read ${file.name} in the browser.`)
      reader.readAsDataURL(file)
    }
  }

  showChips(chips) {
    this.chipCount = chips.length
    this.chipBar.replaceChildren()
    this.chipBar.hidden = !chips.length
    chips.forEach((chip, index) => {
      const node = el("span", "mx-chip")
      node.append(el("span", "mx-chip-name", chip.name), el("span", "mx-chip-label", ` · ${chip.label}`))
      const remove = button("×", "mx-chip-remove", `Remove ${chip.name}`)
      remove.setAttribute("aria-label", `Remove ${chip.name}`)
      remove.addEventListener("click", () => this.model.send_msg({ type: "detach", index }))
      node.append(remove)
      this.chipBar.append(node)
    })
  }

  toggleDocument(entry, index, chip) {
    const open = entry.parts.docs.querySelector(`[data-doc="${index}"]`)
    if (open) { open.remove(); chip.setAttribute("aria-expanded", "false"); return }
    chip.setAttribute("aria-expanded", "true")
    this.model.send_msg({ type: "document", id: entry.data.id, index })
  }

  showDocument(id, doc) {
    const entry = this.messages.get(id)
    if (!entry || !entry.parts.docs) return
    entry.parts.docs.querySelector(`[data-doc="${doc.index}"]`)?.remove()
    const pre = el("pre", "mx-doc-text", doc.text) // text only
    pre.dataset.doc = doc.index
    pre.setAttribute("aria-label", `Text of ${doc.name}`)
    entry.parts.docs.append(pre)
  }

  atBottom() {
    const log = this.log
    return log.scrollHeight - log.scrollTop - log.clientHeight <= FOLLOW_SLACK
  }

  onScroll() {
    // Our own scroll (or the user's, further down) keeps following; only a move up from
    // where we put the view stops it. (No frame requested to tell ours apart: each one
    // costs the browser a frame's work.)
    if (this.follow && this.log.scrollTop >= this.scrolledTo - 1) return
    this.follow = this.atBottom()
    this.jump.hidden = this.follow
  }

  /** Keep the newest text in view, unless the user scrolled up: once per frame, after its
   * drawing. Reading the log's height forces a layout (a few ms); done after every op it was
   * ~200 layouts per streamed reply, the most of the page's own work. */
  scrollDown(force = false) {
    this.scrollForced = this.scrollForced || force
    this.schedule()
  }

  scrollNow(force) {
    if (!(this.follow || force)) {
      this.jump.hidden = false
      return
    }
    this.log.scrollTop = this.log.scrollHeight
    this.scrolledTo = this.log.scrollTop
    this.jump.hidden = true
  }

  // -- the input
  grow() {
    const box = this.box
    box.style.height = "auto"
    box.style.height = `${Math.min(box.scrollHeight, 200)}px`
  }

  onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault()
      this.submit()
    } else if (event.key === "ArrowUp" && !this.box.value && !this.busy) {
      const mine = [...this.messages.values()].filter((e) => e.data.role === "user")
      if (mine.length) { event.preventDefault(); this.startEdit(mine[mine.length - 1]) }
    } else if (event.key === "Escape" && this.busy) {
      this.model.send_msg({ type: "stop" })
    }
  }

  submit() {
    const text = this.box.value
    if (!text.trim() && !this.chipCount) return
    if (this.busy) {
      this.hint("Not sent: a reply is still being written. Wait for it, or press Stop (Esc).")
      return
    }
    this.lastSent = text
    this.model.send_msg({ type: "send", text })
    this.box.value = ""
    this.grow()
    this.follow = true
  }
}

const GAP_WAIT = 3000 // ms a push may wait for an earlier one before the page asks for all
const RETRY = [500, 1000, 2000, 5000, 10000] // ms between attempts to reopen the socket

/** The server's pushes, ``[n, op, op, ...]``, applied in order of ``n`` whichever socket
 * brought them: Bokeh's, or the transcript's own (channel.py), opened here. Ones already
 * applied are dropped (a reconnect replays what it may have missed); one that arrives early
 * waits for the ones before it; a push with the whole transcript ("l") starts afresh. */
class Pushes {
  constructor(model, apply) {
    this.model = model
    this.apply = apply
    this.seen = model.seq || 0 // the page was built with pushes up to this one
    this.early = new Map()
    this.gapTimer = 0
    this.socket = null
    this.attempt = 0
    this.closed = false
  }

  receive(push) {
    if (!Array.isArray(push) || typeof push[0] !== "number") return
    const n = push[0]
    if (n <= this.seen) return
    if (n !== this.seen + 1 && !push.some((op) => Array.isArray(op) && op[0] === "l")) {
      this.early.set(n, push)
      if (!this.gapTimer) this.gapTimer = setTimeout(() => this.resync(), GAP_WAIT)
      return
    }
    this.take(push)
    for (let next; (next = this.early.get(this.seen + 1)); ) this.take(next)
    for (const k of this.early.keys()) if (k <= this.seen) this.early.delete(k)
    if (!this.early.size && this.gapTimer) { clearTimeout(this.gapTimer); this.gapTimer = 0 }
  }

  take(push) {
    this.early.delete(push[0])
    this.seen = push[0]
    for (let i = 1; i < push.length; i++) this.apply(push[i])
  }

  resync() {
    this.gapTimer = 0
    if (this.early.size) this.model.send_msg({ type: "ready", resync: true })
  }

  open() {
    if (this.closed || !this.model.channel || typeof WebSocket === "undefined") return
    const url = new URL(`mixchat-transcript?token=${encodeURIComponent(this.model.channel)}&seen=${this.seen}`, document.baseURI)
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
    const socket = new WebSocket(url)
    this.socket = socket
    socket.onopen = () => { this.attempt = 0 }
    socket.onmessage = (event) => { try { this.receive(JSON.parse(event.data)) } catch (_) {} }
    socket.onclose = (event) => {
      if (this.socket !== socket || this.closed) return
      this.socket = null
      // 4404: the server knows no such transcript (another process, a restart): Bokeh's socket
      // still brings every push, so a few tries are enough.
      if (event.code === 4404 && this.attempt >= 3) return
      setTimeout(() => this.open(), RETRY[Math.min(this.attempt++, RETRY.length - 1)])
    }
  }

  close() {
    this.closed = true
    if (this.gapTimer) clearTimeout(this.gapTimer)
    if (this.socket) this.socket.close()
  }
}

export function render({ model, el: root }) {
  const transcript = new Transcript(model, root)
  const pushes = new Pushes(model, (op) => transcript.handle(op))
  model.on("msg:custom", (push) => pushes.receive(push))
  model.on("remove", () => {
    pushes.close()
    if (transcript.frame) cancelAnimationFrame(transcript.frame)
  })
  pushes.open()
  // Messages pushed before this view existed are not in the document: ask for the whole
  // transcript (a re-render or a reconnect gets what is on screen now).
  model.send_msg({ type: "ready", shown: (model.messages || []).length })
}
