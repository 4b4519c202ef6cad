// page.js is the browser's script, never run by Node: the bundle imports it as text (pageAssets.ts).
declare const text: string;
export default text;
