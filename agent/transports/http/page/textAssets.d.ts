// The page's files are imported as text in the bundle (esbuild's `text` loader, asked for
// with `with { type: "text" }`); see pageAssets.ts.
declare module "*.html" {
  const text: string;
  export default text;
}
declare module "*.css" {
  const text: string;
  export default text;
}
