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
    const row = el("div", "mx-row")
    row.append(this.box, this.send, this.stop)
    this.form.append(row, this.status)

    this.root.append(this.log, this.jump, this.form)
    root.replaceChildren(this.root)
    this.load(model.messages || [])
  }

  // -- messages from the server
  // Each message is a short list, [op, ...args] (see component.py's Op for the names): lists
  // travel as plain JSON arrays, the cheapest shape on Bokeh's websocket.
  handle(msg) {
    const [op, a, c] = msg
    const b = op === "s" || op === "p" ? JSON.parse(c) : c
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
    this.scrollDown()
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

  /** Copy on every message; regenerate and undo on the last reply once it is done. */
  actionsOnLast() {
    const entries = [...this.messages.values()].filter((e) => e.data.role !== "notice")
    const last = entries[entries.length - 1]
    for (const entry of entries) {
      const bar = entry.parts.actions
      bar.replaceChildren()
      const m = entry.data
      if (m.status === "streaming") continue
      if (m.text) {
        const copy = button("Copy", "mx-copy", m.role === "user" ? "Copy this message" : "Copy this reply as Markdown")
        copy.addEventListener("click", () => copyText(entry.data.text || "", copy))
        bar.append(copy)
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

  atBottom() {
    const log = this.log
    return log.scrollHeight - log.scrollTop - log.clientHeight <= FOLLOW_SLACK
  }

  onScroll() {
    if (this.autoScrolling) return
    this.follow = this.atBottom()
    this.jump.hidden = this.follow
  }

  scrollDown(force = false) {
    if (!(this.follow || force)) {
      this.jump.hidden = false
      return
    }
    this.autoScrolling = true
    this.log.scrollTop = this.log.scrollHeight
    this.jump.hidden = true
    requestAnimationFrame(() => { this.autoScrolling = false })
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
    } else if (event.key === "Escape" && this.busy) {
      this.model.send_msg({ type: "stop" })
    }
  }

  submit() {
    const text = this.box.value
    if (!text.trim()) return
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

export function render({ model, el: root }) {
  const transcript = new Transcript(model, root)
  model.on("msg:custom", (ops) => { for (const op of ops) transcript.handle(op) })
  model.on("remove", () => { if (transcript.frame) cancelAnimationFrame(transcript.frame) })
  // Messages pushed before this view existed are not in the document: ask for the whole
  // transcript (a re-render or a reconnect gets what is on screen now).
  model.send_msg({ type: "ready", shown: (model.messages || []).length })
}
