const KiB = 1024;
const MiB = 1024 * KiB;

/** `value` rounded to `digits` decimals, for figures in reports and replies. */
export function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** "512 KiB", "1,100 MiB": whole KiB below one MiB, whole MiB above. */
export function formatBytes(bytes: number): string {
  if (bytes !== 0 && Math.abs(bytes) < MiB) return `${Math.round(bytes / KiB).toLocaleString("en-US")} KiB`;
  return `${Math.round(bytes / MiB).toLocaleString("en-US")} MiB`;
}
