import { readFile } from "node:fs/promises";

// Defined by deploy/build.mjs in the bundle; undefined when run from source.
declare const __IAGENT_VERSION__: string | undefined;

/** The page's three files, as text. */
export interface PageAssets {
  html: string;
  css: string;
  js: string;
}

/**
 * The bundle carries the files inline (esbuild's text loader), so a release is still one file;
 * from source (`npm start`, tests) they are read beside this module, since Node cannot import
 * .html and would run page.js as a module.
 */
async function load(): Promise<PageAssets> {
  if (typeof __IAGENT_VERSION__ === "string") {
    const [html, css, js] = await Promise.all([
      import("./page.html", { with: { type: "text" } }),
      import("./page.css", { with: { type: "text" } }),
      import("./page.js", { with: { type: "text" } }),
    ]);
    return { html: html.default, css: css.default, js: js.default };
  }
  const read = (name: string) => readFile(new URL(name, import.meta.url), "utf8");
  const [html, css, js] = await Promise.all([read("./page.html"), read("./page.css"), read("./page.js")]);
  return { html, css, js };
}

let assets: Promise<PageAssets> | undefined;

/** Loaded once, on the first page served. */
export function pageAssets(): Promise<PageAssets> {
  assets ??= load();
  return assets;
}
