// Rebuilds the transcript component's browser assets from npm packages (run: `make assets`).
//
//   src/mixchat/ui/transcript/dist/transcript.bundle.js   the ES module + markdown-it, DOMPurify,
//                                                          KaTeX, highlight.js (minified)
//   src/mixchat/ui/transcript/dist/transcript.bundle.css  KaTeX + highlight.js + transcript.css
//   src/mixchat/ui/assets/katex/                          KaTeX's fonts and their @font-face rules
//
// The fonts are declared at the document level (assets/katex/fonts.css, a page stylesheet):
// @font-face rules inside a shadow root are ignored by browsers. The outputs are committed, so
// `make run` needs no Node and the page needs no CDN.
import { build } from "esbuild"
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const modules = join(here, "node_modules")
const component = join(here, "..", "src", "mixchat", "ui", "transcript")
const dist = join(component, "dist")
const katexOut = join(here, "..", "src", "mixchat", "ui", "assets", "katex")

rmSync(dist, { recursive: true, force: true })
mkdirSync(dist, { recursive: true })
await build({
  entryPoints: [join(component, "transcript.js")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  nodePaths: [modules],
  legalComments: "eof",
  outfile: join(dist, "transcript.bundle.js"),
  logLevel: "info",
})

// KaTeX's CSS without its @font-face rules (those go to the page), highlight.js's GitHub theme.
const katexCss = readFileSync(join(modules, "katex", "dist", "katex.min.css"), "utf8")
const fontFaces = katexCss.match(/@font-face\{[^}]*\}/g) || []
const rules = katexCss.replace(/@font-face\{[^}]*\}/g, "")
const hljsCss = readFileSync(join(modules, "highlight.js", "styles", "github.min.css"), "utf8")
const own = readFileSync(join(component, "transcript.css"), "utf8")
const css = await build({
  stdin: { contents: [rules, hljsCss, own].join("\n"), loader: "css" },
  bundle: false,
  minify: true,
  write: false,
})
writeFileSync(join(dist, "transcript.bundle.css"), css.outputFiles[0].text)

rmSync(katexOut, { recursive: true, force: true })
mkdirSync(join(katexOut, "fonts"), { recursive: true })
const woff2Only = fontFaces.map((rule) =>
  rule.replace(/src:[^;}]*/, (src) => `src:${src.match(/url\(fonts\/[^)]*\.woff2\) format\("woff2"\)/)[0]}`),
)
writeFileSync(join(katexOut, "fonts.css"), woff2Only.join("\n") + "\n")
for (const name of readdirSync(join(modules, "katex", "dist", "fonts"))) {
  if (name.endsWith(".woff2")) copyFileSync(join(modules, "katex", "dist", "fonts", name), join(katexOut, "fonts", name))
}
copyFileSync(join(modules, "katex", "LICENSE"), join(katexOut, "LICENSE"))
console.log(`${fontFaces.length} KaTeX fonts, CSS ${css.outputFiles[0].text.length} bytes`)
