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

/**
 * A plain text table: columns padded to their widest cell, numbers (cells that start with a digit or a
 * sign) right-aligned. For the reports of probe, smoke, bench and `models list`.
 */
export function textTable(rows: readonly (readonly string[])[], gap = "  "): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) =>
          i === row.length - 1 && !/^[-+\d]/.test(cell) ? cell : /^[-+\d]/.test(cell) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!),
        )
        .join(gap)
        .trimEnd(),
    )
    .join("\n");
}
