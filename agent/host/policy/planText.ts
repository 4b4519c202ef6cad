/** How the plan's reasons write numbers: "1,100", "1 core", "2 cores". */

export const n = (value: number): string => value.toLocaleString("en-US");

/** "1 core", "2 cores". */
export const count = (value: number, noun: string): string => `${n(value)} ${noun}${value === 1 ? "" : "s"}`;
